"""CTranslate2 Whisper → Hugging Face `WhisperForConditionalGeneration`.

faster-whisper ships Whisper as a CTranslate2 `model.bin`; distillation needs the encoder's per-layer
states, which CTranslate2 does not expose. The CT2 file is a simple documented binary (see
ctranslate2/specs/model_spec.py `_serialize`): a header, then (name, shape, dtype, bytes) records,
then aliases. This reads it and maps every tensor back to its transformers name; fused attention
projections are split again (self-attention: [q; k; v], cross-attention: [k; v]; Whisper's k_proj
has no bias, CT2 stores zeros there).
"""

from __future__ import annotations

import json
import os
import re
import struct

import numpy as np
import torch

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: None}  # 5: bfloat16


def read_ct2(path: str) -> dict[str, np.ndarray]:
    """All variables of a CT2 model.bin, aliases resolved, as numpy arrays (bf16 widened to fp32)."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        def unpack(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string():
            return f.read(unpack("H"))[:-1].decode("utf-8")

        version = unpack("I")
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported")
        spec, _revision, count = string(), unpack("I"), unpack("I")
        if spec != "WhisperSpec":
            raise ValueError(f"{path}: a {spec}, not a Whisper model")
        for _ in range(count):
            name = string()
            shape = [unpack("I") for _ in range(unpack("B"))]
            dtype_id, nbytes = unpack("B"), unpack("I")
            raw = f.read(nbytes)
            if dtype_id == 5:
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, _DTYPES[dtype_id])
            out[name] = arr.reshape(shape)
        for _ in range(unpack("I")):
            alias, target = string(), string()
            out[alias] = out[target]
    return out


def _layers(ct2: dict, side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    return len({m.group(1) for k in ct2 if (m := pattern.match(k))})


def hf_state_dict(ct2: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    sd: dict[str, np.ndarray] = {}

    def linear(hf: str, ct: str, bias: bool = True):
        sd[f"{hf}.weight"] = ct2[f"{ct}/weight"]
        if bias:
            sd[f"{hf}.bias"] = ct2[f"{ct}/bias"]

    def norm(hf: str, ct: str):
        sd[f"{hf}.weight"], sd[f"{hf}.bias"] = ct2[f"{ct}/gamma"], ct2[f"{ct}/beta"]

    def split(hf_attn: str, ct: str, names: list[str]):
        w, b = ct2[f"{ct}/weight"], ct2[f"{ct}/bias"]
        d = w.shape[1]
        for i, n in enumerate(names):
            sd[f"{hf_attn}.{n}.weight"] = w[i * d : (i + 1) * d]
            if n != "k_proj":  # Whisper's key projections have no bias
                sd[f"{hf_attn}.{n}.bias"] = b[i * d : (i + 1) * d]

    e, dcd = "model.encoder", "model.decoder"
    linear(f"{e}.conv1", "encoder/conv1")
    linear(f"{e}.conv2", "encoder/conv2")
    sd[f"{e}.embed_positions.weight"] = ct2["encoder/position_encodings/encodings"]
    norm(f"{e}.layer_norm", "encoder/layer_norm")
    def self_attention_and_ffn(h: str, c: str):  # what encoder and decoder layers share
        norm(f"{h}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
        split(f"{h}.self_attn", f"{c}/self_attention/linear_0", ["q_proj", "k_proj", "v_proj"])
        linear(f"{h}.self_attn.out_proj", f"{c}/self_attention/linear_1")
        norm(f"{h}.final_layer_norm", f"{c}/ffn/layer_norm")
        linear(f"{h}.fc1", f"{c}/ffn/linear_0")
        linear(f"{h}.fc2", f"{c}/ffn/linear_1")

    for i in range(_layers(ct2, "encoder")):
        self_attention_and_ffn(f"{e}.layers.{i}", f"encoder/layer_{i}")
    sd[f"{dcd}.embed_tokens.weight"] = ct2["decoder/embeddings/weight"]
    sd[f"{dcd}.embed_positions.weight"] = ct2["decoder/position_encodings/encodings"]
    norm(f"{dcd}.layer_norm", "decoder/layer_norm")
    for i in range(_layers(ct2, "decoder")):
        h, c = f"{dcd}.layers.{i}", f"decoder/layer_{i}"
        self_attention_and_ffn(h, c)
        norm(f"{h}.encoder_attn_layer_norm", f"{c}/attention/layer_norm")
        linear(f"{h}.encoder_attn.q_proj", f"{c}/attention/linear_0")
        split(f"{h}.encoder_attn", f"{c}/attention/linear_1", ["k_proj", "v_proj"])
        linear(f"{h}.encoder_attn.out_proj", f"{c}/attention/linear_2")
    sd["proj_out.weight"] = ct2.get("decoder/projection/weight", ct2["decoder/embeddings/weight"])
    return {k: torch.from_numpy(np.ascontiguousarray(v).astype(np.float32)) for k, v in sd.items()}


def convert_ct2_whisper(ct2_dir: str, output: str) -> str:
    """Write a transformers Whisper checkpoint (fp32) + feature extractor + tokenizer to `output`."""
    from transformers import (
        PreTrainedTokenizerFast,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    ct2 = read_ct2(os.path.join(ct2_dir, "model.bin"))
    with open(os.path.join(ct2_dir, "config.json")) as f:
        ct2_cfg = json.load(f)
    vocab, d_model = ct2["decoder/embeddings/weight"].shape
    n_mels = ct2["encoder/conv1/weight"].shape[1]
    heads = int(ct2["encoder/num_heads"])
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(ct2_dir, "tokenizer.json"), eos_token="<|endoftext|>",
                                  bos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    cfg = WhisperConfig(
        vocab_size=vocab, num_mel_bins=n_mels, d_model=d_model,
        encoder_layers=_layers(ct2, "encoder"), decoder_layers=_layers(ct2, "decoder"),
        encoder_attention_heads=heads, decoder_attention_heads=int(ct2["decoder/num_heads"]),
        encoder_ffn_dim=ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=ct2["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct2["decoder/position_encodings/encodings"].shape[0],
        decoder_start_token_id=tok.convert_tokens_to_ids("<|startoftranscript|>"),
        eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
        suppress_tokens=ct2_cfg.get("suppress_ids", []), begin_suppress_tokens=ct2_cfg.get("suppress_ids_begin", []),
    )
    model = WhisperForConditionalGeneration(cfg)
    missing, unexpected = model.load_state_dict(hf_state_dict(ct2), strict=False)
    missing = [m for m in missing if m != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise ValueError(f"CT2 → HF mapping incomplete: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.save_pretrained(output, safe_serialization=True)
    tok.save_pretrained(output)
    WhisperFeatureExtractor(feature_size=n_mels).save_pretrained(output)
    return output


@torch.no_grad()
def greedy_transcribe(model, tokenizer, mel: np.ndarray | torch.Tensor, max_new_tokens: int = 120) -> str:
    """Plain greedy decoding of a (n_mels, 3000) log-mel with the English transcription prompt, no timestamps."""
    mel = torch.as_tensor(mel, dtype=torch.float32)
    enc = model.model.encoder(mel[None]).last_hidden_state
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")]
    eot = tokenizer.eos_token_id
    for _ in range(max_new_tokens):
        logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits[0, -1]
        nxt = int(logits.argmax())
        if nxt == eot:
            break
        ids.append(nxt)
    return tokenizer.decode(ids[4:], skip_special_tokens=True).strip()
