"""`aura make-tiny`: tiny random-weight models and a bundle, for tests and development.

Everything is built offline: byte-level BPE tokenizers trained here on a built-in word list, a tiny
causal LM (Qwen2- or Gemma 3-style), a tiny Whisper (HF and CTranslate2), a checkpoint with a
random (non-zero) LoRA, and the exported bundle. The outputs of these models are meaningless.
"""

from __future__ import annotations

import os
import random

import torch

WARNING = "aura make-tiny: these models have RANDOM weights; everything they say is meaningless."

_WORDS = (
    "the a an of to and in is it you that he was for on are with as his they be at one have this from "
    "or had by hot word but what some we can out other were all there when up use your how said each "
    "she which do their time if will way about many then them write would like so these her long make "
    "thing see him two has look more day could go come did number sound no most people my over know "
    "water than call first who may down side been now find any new work part take get place made live "
    "where after back little only round man year came show every good me give our under name very "
    "through just form sentence great think say help low line differ turn cause much mean before move "
    "right boy old too same tell does set three want air well also play small end put home read hand "
    "port large spell add even land here must big high such follow act why ask men change went light "
    "kind off need house picture try us again animal point mother world near build self earth father "
    "turn on lights what weather today tomorrow play music stop alarm seven eight nine ten zero"
).split()

WHISPER_SPECIALS = [
    "<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
]


def _corpus(n: int = 2000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = rng.choices(_WORDS, k=rng.randint(3, 12))
        line = " ".join(words)
        lines.append(line.capitalize() + rng.choice([".", "?", "!", ","]) + f" {rng.randint(0, 999)}")
    return lines


def build_tokenizer(vocab_size: int, specials: list[str], **special_map):
    """A byte-level BPE tokenizer trained on the built-in corpus, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special_map)


def make_tiny_llm(path: str, arch: str = "qwen2", seed: int = 0) -> str:
    """A 2-layer causal LM with head_dim 64 (vLLM's CPU attention kernels need head_dim >= 32)."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, Qwen2Config

    torch.manual_seed(seed)
    if arch == "qwen2":
        tok = build_tokenizer(400, ["<|endoftext|>"], eos_token="<|endoftext|>", pad_token="<|endoftext|>")
        cfg = Qwen2Config(
            vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
            tie_word_embeddings=True, eos_token_id=tok.eos_token_id, bos_token_id=None,
        )
    elif arch == "gemma3":
        tok = build_tokenizer(400, ["<pad>", "<bos>", "<eos>"], bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
        cfg = Gemma3TextConfig(
            vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=2048,
            sliding_window=512, query_pre_attn_scalar=64, tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        cfg.architectures = ["Gemma3ForCausalLM"]
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose qwen2 or gemma3")
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def make_tiny_whisper(path: str, seed: int = 0) -> str:
    """A 2+2-layer English-only Whisper with an 80-mel feature extractor and a Whisper-style vocabulary."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    torch.manual_seed(seed)
    tok = build_tokenizer(400, WHISPER_SPECIALS, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                          pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in WHISPER_SPECIALS}
    n_timestamps = 1501  # <|0.00|> ... <|30.00|>, appended after the specials like Whisper's own vocab
    cfg = WhisperConfig(
        vocab_size=len(tok) + n_timestamps, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
        suppress_tokens=[], begin_suppress_tokens=[ids["<|endoftext|>"]],
    )
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id,
        suppress_tokens=[], begin_suppress_tokens=[ids["<|endoftext|>"]], no_timestamps_token_id=ids["<|notimestamps|>"],
        max_length=64,
    )
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(path)
    return path


def convert_whisper_ct2(hf_dir: str, out_dir: str) -> str:
    """CTranslate2's own converter, as users convert real Whisper checkpoints for faster-whisper."""
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(hf_dir, copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(out_dir, force=True)
    return out_dir


def make_tiny(output: str, arch: str = "qwen2", seed: int = 0) -> dict[str, str]:
    """Write llm/, whisper/, whisper-ct2/, checkpoint/ and bundle/ under `output`; return their paths."""
    from adapters.runtime.config import AuraConfig, default_layer_map
    from adapters.runtime.embedding import AudioEmbedConfig
    from adapters.runtime.features import FeatureConfig
    from adapters.train.export import export_bundle
    from adapters.train.student import Student

    print(WARNING, flush=True)
    paths = {k: os.path.join(output, k) for k in ("llm", "whisper", "whisper-ct2", "checkpoint", "bundle")}
    make_tiny_llm(paths["llm"], arch, seed)
    make_tiny_whisper(paths["whisper"], seed)
    convert_whisper_ct2(paths["whisper"], paths["whisper-ct2"])
    torch.manual_seed(seed)
    cfg = AuraConfig(
        base_llm=os.path.abspath(paths["llm"]),
        teacher=os.path.abspath(paths["whisper"]),
        features=FeatureConfig.from_whisper_dir(paths["whisper"]),
        audio_embed=AudioEmbedConfig(n_mels=80, width=64),
        layer_map=default_layer_map(2, 2),
        asr_model=os.path.abspath(paths["whisper-ct2"]),
        name=f"aura-tiny-{arch}",
        training={"note": "random weights from `aura make-tiny`; outputs are meaningless"},
    )
    # init_lora_weights=False gives a non-zero LoRA, so merging really changes the weights.
    student = Student.create(cfg, lora_init=False)
    student.save_checkpoint(paths["checkpoint"])
    export_bundle(paths["checkpoint"], paths["bundle"])
    print(WARNING, flush=True)
    return paths
