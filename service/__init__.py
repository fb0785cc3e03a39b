"""The AuRA serving gateway: FastAPI in front of vLLM, with the cascaded ASR→LLM path beside it."""
