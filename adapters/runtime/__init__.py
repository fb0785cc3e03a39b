"""What serving imports, and training too: audio decoding, log-mel features, the audio embedding
layer and its weights file, prompt assembly, aura.json, the bundle. Nothing here imports training,
data or weights code (tests/test_layout.py)."""
