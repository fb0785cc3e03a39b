"""Training data: JSONL manifests, the synthetic corpus (sentences, prose, TTS voices) and `aura synth`."""
