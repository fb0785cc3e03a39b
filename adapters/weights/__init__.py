"""Model weights tooling: the offline demo models, the CTranslate2 → transformers Whisper converter,
tiny random models for tests, and the committed pretrained adapters."""
