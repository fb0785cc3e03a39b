"""AuRA: an LLM that understands speech through a LoRA and a small audio embedding layer.

Everything that both training and serving need (audio loading, features, the audio embedding
layer, prompt assembly, the bundle format) is defined here once; `service/` imports it.
"""

SAMPLE_RATE = 16_000
