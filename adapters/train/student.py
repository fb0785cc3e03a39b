"""The student: a Hugging Face causal LM with a PEFT LoRA, plus the audio embedding layer.

A training checkpoint keeps the LoRA un-merged (PEFT adapter in `lora/`), next to
`audio_embed.safetensors` and `aura.json`, so it can be resumed and re-exported.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch

from adapters.runtime.bundle import LORA_DIR, audio_embed_weights, save_audio_embed
from adapters.runtime.config import AuraConfig
from adapters.runtime.embedding import AudioEmbedding, AudioTokens
from adapters.runtime.errors import BundleError
from adapters.runtime.features import log_mel, log_mels
from adapters.runtime.llm_io import load_tokenizer
from adapters.runtime.prompt import PromptEmbeds, assemble_prompt, text_pieces
from adapters.train.oracle import KIND as ORACLE
from adapters.train.oracle import EncoderOracle


def load_causal_lm(path: str, dtype: torch.dtype | None = None):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto")


def embedding_rms(module: torch.nn.Module) -> float:
    """RMS norm of the LLM's input embeddings (through the module, so Gemma's scale is included)."""
    n = module.weight.shape[0]
    ids = torch.arange(0, n, max(1, n // 4096))
    with torch.no_grad():
        e = module(ids).float()
    return float(e.pow(2).mean(dim=-1).sqrt().mean())


def new_audio_front_end(cfg: AuraConfig, teacher=None) -> AudioTokens:
    """The audio layer cfg asks for: AuRA's own, or the encoder-kept oracle (which needs the teacher)."""
    if cfg.audio_embed.kind == "conv":
        return AudioEmbedding(cfg.audio_embed)
    if cfg.audio_embed.kind == ORACLE:
        from adapters.train.teacher import Teacher

        return EncoderOracle(cfg.audio_embed, teacher or Teacher(cfg.teacher))
    raise BundleError(f"unknown audio front end {cfg.audio_embed.kind!r}")


# The shapes of chat that serving receives around one clip. Training on all of them (the trainer's
# --prompt-variety) keeps the adapter from hearing only in the one layout it was trained on.
PROMPT_LAYOUTS = ("audio-first", "text-first", "audio-only", "system")
SYSTEM_PROMPT = "You are a helpful assistant."


def messages_for(instruction: str, layout: str = "audio-first") -> list[dict]:
    """The chat for one clip and an instruction, in one of PROMPT_LAYOUTS ("audio-only" drops the
    instruction: a transcription example whose user turn is the audio alone)."""
    audio, text = {"type": "audio"}, {"type": "text", "text": instruction}
    content = {"audio-first": [audio, text], "text-first": [text, audio], "audio-only": [audio], "system": [audio, text]}
    if layout not in content:
        raise ValueError(f"unknown prompt layout {layout!r}; one of {', '.join(PROMPT_LAYOUTS)}")
    system = [{"role": "system", "content": SYSTEM_PROMPT}] if layout == "system" else []
    return system + [{"role": "user", "content": content[layout]}]


@dataclass
class Example:
    """One training example: a clip, the user's instruction, and the text the model should answer."""

    wave: np.ndarray
    instruction: str
    target: str
    source: str = ""
    layout: str = "audio-first"  # how the chat around the audio reads: one of PROMPT_LAYOUTS


class Student(torch.nn.Module):
    def __init__(self, llm, audio_embed: AudioTokens, tokenizer, cfg: AuraConfig):
        super().__init__()
        self.llm = llm
        self.audio_embed = audio_embed
        self.tokenizer = tokenizer
        self.cfg = cfg
        self._templates: dict[tuple[str, str], tuple[list[int], list[int]]] = {}

    @classmethod
    def create(cls, cfg: AuraConfig, *, lora_init: bool | str = True, teacher=None, base_dtype: torch.dtype = torch.float32) -> Student:
        """A fresh student from the base LLM in cfg.base_llm: LoRA attached, audio layer initialised
        (`teacher`: the loaded teacher, which an encoder-kept oracle reuses). `base_dtype` is the frozen
        base weights' (bf16 halves a large student's memory); the LoRA and the audio layer stay fp32."""
        from peft import LoraConfig, get_peft_model

        llm = load_causal_lm(cfg.base_llm, dtype=base_dtype)
        tokenizer = load_tokenizer(cfg.base_llm)
        cfg.audio_embed.hidden_size = llm.config.get_text_config().hidden_size
        cfg.audio_embed.init_scale = embedding_rms(llm.get_input_embeddings())
        lora = LoraConfig(
            r=cfg.lora.rank,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            layers_to_transform=cfg.lora.layers,
            init_lora_weights=lora_init,
            bias="none",
        )
        return cls(get_peft_model(llm, lora), new_audio_front_end(cfg, teacher), tokenizer, cfg)

    @classmethod
    def from_checkpoint(cls, directory: str, *, trainable: bool = False, teacher=None,
                        base_dtype: torch.dtype = torch.float32) -> Student:
        from peft import PeftModel

        cfg = AuraConfig.load(directory)
        llm = load_causal_lm(cfg.base_llm, dtype=base_dtype)
        llm = PeftModel.from_pretrained(llm, os.path.join(directory, LORA_DIR), is_trainable=trainable)
        audio = new_audio_front_end(cfg, teacher)
        audio.load_state_dict(audio_embed_weights(directory))
        return cls(llm, audio, load_tokenizer(cfg.base_llm), cfg)

    def save_checkpoint(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.llm.save_pretrained(os.path.join(directory, LORA_DIR))
        save_audio_embed(self.audio_embed, directory)
        self.cfg.save(directory)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids.to(self.device))

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head (with final-logit soft-capping where the model has it) on final hidden states."""
        logits = self.llm.get_output_embeddings()(hidden)
        cap = getattr(self.llm.config.get_text_config(), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @contextlib.contextmanager
    def first_layers(self, n: int):
        """Within the block, the LLM runs only its first n decoder layers: a distillation-only step
        needs the states up to the deepest mapped layer (its raw output is hidden_states[n - 1] when
        n layers run; the last entry is normed) and no LM head over 262k words."""
        decoder = self.llm.get_base_model().get_decoder()  # Gemma 3 1B+ nests it (model.language_model)
        layers = getattr(decoder, "layers", None)
        if layers is None:
            raise ValueError(f"{type(decoder).__name__} has no `layers` to run the first {n} of")
        decoder.layers = layers[:n]
        try:
            yield
        finally:
            decoder.layers = layers

    @property
    def device(self) -> torch.device:
        return next(self.audio_embed.parameters()).device

    def audio_tokens(self, wave: np.ndarray) -> torch.Tensor:
        return self.audio_embed.embed(log_mel(torch.as_tensor(wave).to(self.device), self.cfg.features))

    def prompt(self, wave: np.ndarray, instruction: str, layout: str = "audio-first") -> PromptEmbeds:
        return assemble_prompt(
            self.tokenizer, self.embed_tokens, messages_for(instruction, layout), [self.audio_tokens(wave)], chat_template=self.cfg.chat_template
        )

    @torch.no_grad()
    def transcribe(self, wave: np.ndarray, instruction: str | None = None, max_new_tokens: int = 48) -> str:
        """Greedy answer of the un-merged student (HF generate), to watch training; serving uses vLLM."""
        p = self.prompt(wave, instruction or self.cfg.transcribe_instruction)
        embeds = p.embeds[None].to(next(self.llm.parameters()).dtype)
        ids = self.llm.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
                                max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(ids[0], skip_special_tokens=True).strip()

    def audio_token_span(self, start: int, n: int) -> tuple[int, int]:
        """(start, count) of the real audio tokens among n audio positions, boundary embeddings excluded."""
        if self.cfg.audio_embed.boundaries:
            return start + 1, n - 2
        return start, n

    def _template(self, instruction: str, layout: str) -> tuple[list[int], list[int]]:
        """Token ids before and after the audio in the prompt for `instruction` in `layout`, split
        exactly as assemble_prompt splits them (cached: rendering a chat template costs more than a
        forward pass of the audio layer)."""
        cached = self._templates.get((instruction, layout))
        if cached is None:
            (before, after), _ = text_pieces(self.tokenizer, messages_for(instruction, layout), self.cfg.chat_template)
            cached = self._templates[(instruction, layout)] = (before, after)
        return cached

    def batch(self, examples: list[Example]) -> dict:
        """Right-padded inputs_embeds, attention mask, labels (prompt masked) and audio spans: the
        prompts `prompt()` builds, followed by the targets, made with one pass of the audio layer and
        one embedding lookup for the whole batch (per-example work starved a GPU)."""
        dev = self.device
        audio = self.audio_embed.embed_batch(log_mels([ex.wave for ex in examples], self.cfg.features, dev))

        eos = self.tokenizer.eos_token
        rows, starts, spans = [], [], []
        for ex, a in zip(examples, audio, strict=True):
            before, after = self._template(ex.instruction, ex.layout)
            target = self.tokenizer(ex.target + eos, add_special_tokens=False)["input_ids"]
            rows.append((before + [0] * a.shape[0] + after, target))
            starts.append(len(before))
            spans.append(self.audio_token_span(len(before), a.shape[0]))
        length = max(len(p) + len(t) for p, t in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.long)
        lab = torch.full((len(rows), length), -100, dtype=torch.long)
        for i, (prompt, target) in enumerate(rows):
            n = len(prompt) + len(target)
            ids[i, :n] = torch.tensor(prompt + target)
            mask[i, :n] = 1
            lab[i, len(prompt) : n] = torch.tensor(target)
        embeds = self.embed_tokens(ids).clone()
        for i, (a, s) in enumerate(zip(audio, starts, strict=True)):
            embeds[i, s : s + a.shape[0]] = a.to(embeds.dtype)
        return {"inputs_embeds": embeds, "attention_mask": mask.to(dev), "labels": lab.to(dev), "audio_spans": spans}
