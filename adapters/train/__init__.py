"""Training: the student (LLM + LoRA + audio layer), the frozen Whisper teacher, the losses, the
distillation loop, the encoder-kept oracle, checkpoint evaluation, and export to a bundle."""
