"""Whisper's encoder alone, in fp16, for the device pack: the teacher and the oracle read only the
encoder, and its fp16 weights are a seventh of the full fp32 checkpoint (41 of 281 MB).

    python scripts/device/teacher_weights.py pack   artifacts/demo/whisper-base STAGE/whisper-encoder
    python scripts/device/teacher_weights.py unpack STAGE/whisper-encoder      artifacts/demo/whisper-base-encoder

`unpack` writes an fp32 WhisperModel whose decoder is left at its random initialisation: a teacher,
not an ASR model.
"""

from __future__ import annotations

import os
import shutil
import sys

CONFIG_FILES = ("config.json", "preprocessor_config.json")


def pack(src: str, out: str) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import WhisperModel

    model = WhisperModel.from_pretrained(src, dtype=torch.float32)
    weights = {k: v.half().contiguous() for k, v in model.state_dict().items() if k.startswith("encoder.")}
    os.makedirs(out, exist_ok=True)
    save_file(weights, os.path.join(out, "encoder.safetensors"))
    for name in CONFIG_FILES:
        shutil.copyfile(os.path.join(src, name), os.path.join(out, name))


def unpack(src: str, out: str) -> None:
    from safetensors.torch import load_file
    from transformers import WhisperConfig, WhisperModel

    model = WhisperModel(WhisperConfig.from_pretrained(src)).float()
    weights = {k: v.float() for k, v in load_file(os.path.join(src, "encoder.safetensors")).items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k.startswith("encoder.")]
    if missing or unexpected:
        sys.exit(f"encoder weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.save_pretrained(out, safe_serialization=True)
    for name in CONFIG_FILES:
        shutil.copyfile(os.path.join(src, name), os.path.join(out, name))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        sys.exit(__doc__)
    {"pack": pack, "unpack": unpack}[sys.argv[1]](sys.argv[2], sys.argv[3])
