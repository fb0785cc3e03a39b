"""AuRA: an LLM that understands speech through a LoRA and a small audio embedding layer.

    adapters/runtime/   what serving imports (and training too): audio, features, the audio
                        embedding layer, prompts, aura.json, the bundle
    adapters/train/     student, teacher, losses, the distillation loop, oracle, evaluate, export
    adapters/data/      manifests, the synthetic corpus, `aura synth`
    adapters/weights/   demo models, converters, tiny models, the committed pretrained adapters
    adapters/cli.py     the `aura` command
"""

SAMPLE_RATE = 16_000
