"""The frozen ASR-encoder teacher: per-layer Whisper encoder states, pooled to the student's rate.

Whisper was trained on 30 s windows, but its encoder is a plain transformer with learned positions:
we run it on the clip's own frames (positions sliced to that length) instead of padding every clip
to 30 s. On 2 CPU cores that is ~10× cheaper for 3 s clips (0.07 s vs 0.8 s), and the states stay
close to the padded ones (cosine 0.93 at the last layer, ≥0.97 at layers 1-3, measured on a
festival clip), which is what a distillation *target* needs. Teacher states are cached on disk, keyed
by the audio's content and the teacher settings, so epochs never recompute them.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from adapters.runtime.features import FeatureConfig, log_mels, pad_frames


class Teacher:
    def __init__(self, path: str, device: str | torch.device = "cpu"):
        from transformers import WhisperModel

        self.path = path
        self.device = torch.device(device)
        model = WhisperModel.from_pretrained(path)
        self.encoder = model.get_encoder().to(self.device).eval().requires_grad_(False)
        del model
        self.features = FeatureConfig.from_whisper_dir(path)
        cfg = self.encoder.config
        self.num_layers: int = cfg.encoder_layers
        self.hidden_size: int = cfg.d_model
        self.max_frames = cfg.max_source_positions * 2  # the conv front end halves the frame rate
        self.max_samples = self.max_frames * self.features.hop_length

    @property
    def max_seconds(self) -> float:
        return self.max_samples / self.features.sample_rate

    @torch.no_grad()
    def layer_states(self, wave: np.ndarray, layers: list[int], num_tokens: int) -> dict[int, torch.Tensor]:
        """{teacher hidden-state index: (num_tokens, d_model)} for one clip, pooled in time."""
        return self.layer_states_many([wave], layers, [num_tokens])[0]

    @torch.no_grad()
    def layer_states_many(self, waves: list[np.ndarray], layers: list[int], num_tokens: list[int],
                          to_cpu: bool = True) -> list[dict[int, torch.Tensor]]:
        """layer_states of several clips in one padded pass; each clip gets the states it gets alone.
        With to_cpu=False they stay on the teacher's device (states used at once, not stored)."""
        for w in waves:
            if w.shape[0] > self.max_samples:
                raise ValueError(f"the teacher takes at most {self.max_seconds:.0f} s of audio, got {w.shape[0] / 16000:.1f} s")
        states = self.states(log_mels(waves, self.features, self.device), layers, num_tokens)
        return [{layer: (v.float().cpu() if to_cpu else v.float()).contiguous() for layer, v in s.items()} for s in states]

    @torch.no_grad()
    def states(self, mels: list[torch.Tensor], layers: list[int], num_tokens: list[int]) -> list[dict[int, torch.Tensor]]:
        """Per-clip {layer: (num_tokens, d_model)} from log-mels, pooled in time, on the teacher's device."""
        frames = torch.tensor([m.shape[-1] for m in mels], device=self.device)
        hidden = self._encode(pad_frames(mels), frames if len(mels) > 1 else None)
        out = []
        for i, m in enumerate(mels):
            t = (m.shape[-1] + 1) // 2  # conv2 has stride 2
            out.append({
                layer: torch.nn.functional.adaptive_avg_pool1d(hidden[layer][i, :t].float().T[None], num_tokens[i])[0].T
                for layer in layers
            })
        return out

    def _encode(self, mel: torch.Tensor, frames: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Hidden states [embeddings, layer 1, ..., final layer (normed)], as WhisperEncoder's
        output_hidden_states gives them, for an unpadded mel of any length up to 30 s.

        With `frames` (each clip's mel length) the batch is right-padded: what lies past a clip's end
        is zeroed before the second convolution (its own padding is zeros) and masked out of
        attention, so every clip's states are those it gets alone."""
        enc = self.encoder
        x = torch.nn.functional.gelu(enc.conv1(mel))
        if frames is not None:
            x = x * (torch.arange(x.shape[-1], device=x.device) < frames[:, None])[:, None, :]
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        mask = None
        if frames is not None:
            valid = torch.arange(x.shape[1], device=x.device) < ((frames + 1) // 2)[:, None]
            mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device).masked_fill(~valid, torch.finfo(x.dtype).min)
            mask = mask[:, None, None, :].expand(-1, 1, x.shape[1], -1)
        hidden = [x]
        for layer in enc.layers:
            x = layer(x, mask)
            x = x[0] if isinstance(x, tuple) else x
            hidden.append(x)
        hidden[-1] = enc.layer_norm(x)
        return hidden


class TeacherCache:
    """Teacher states on disk, one safetensors file per (clip, teacher, layers, token count). With no
    directory nothing is stored: the states are computed on the teacher's device each time (the
    trainer's --no-teacher-cache, for corpora whose states would not fit on disk)."""

    def __init__(self, teacher: Teacher, directory: str | None):
        self.teacher = teacher
        self.directory = directory
        if directory is not None:
            os.makedirs(directory, exist_ok=True)

    def _key(self, wave: np.ndarray, layers: list[int], num_tokens: int) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        h.update(f"{os.path.abspath(self.teacher.path)}|{layers}|{num_tokens}|unpadded".encode())
        return h.hexdigest()[:32]

    def _path(self, wave: np.ndarray, layers: list[int], num_tokens: int) -> str:
        return os.path.join(self.directory, self._key(wave, layers, num_tokens) + ".safetensors")

    def get(self, wave: np.ndarray, layers: list[int], num_tokens: int) -> dict[int, torch.Tensor]:
        return self.get_many([wave], layers, [num_tokens])[0]

    def get_many(self, waves: list[np.ndarray], layers: list[int], num_tokens: list[int], batch_size: int = 16,
                 progress: bool = False, desc: str = "teacher states") -> list[dict[int, torch.Tensor]]:
        """States of every clip: cached ones read from disk, the rest computed in padded batches of
        clips of similar length (one teacher pass per batch, not per clip) and cached."""
        if self.directory is None:
            paths = [str(i) for i in range(len(waves))]
            todo = {p: i for i, p in enumerate(paths)}
        else:
            paths = [self._path(w, layers, n) for w, n in zip(waves, num_tokens, strict=True)]
            todo: dict[str, int] = {}  # a missing entry → the first clip that needs it
            for i, path in enumerate(paths):
                if path not in todo and not os.path.exists(path):
                    todo[path] = i
        order = sorted(todo.values(), key=lambda i: waves[i].shape[0])
        computed: dict[str, dict[int, torch.Tensor]] = {}
        with tqdm(total=len(todo), desc=desc, disable=not progress, unit="clip") as bar:
            for k in range(0, len(order), batch_size):
                idx = order[k : k + batch_size]
                batch = self.teacher.layer_states_many([waves[i] for i in idx], layers, [num_tokens[i] for i in idx],
                                                       to_cpu=self.directory is not None)
                for i, states in zip(idx, batch, strict=True):
                    computed[paths[i]] = states
                    if self.directory is None:
                        continue
                    tmp = paths[i] + ".tmp"
                    save_file({str(layer): v for layer, v in states.items()}, tmp)
                    os.replace(tmp, paths[i])  # atomic, so an interrupted run never leaves a half-written entry
                bar.update(len(idx))
        return [computed[p] if p in computed else {int(k): v for k, v in load_file(p).items()} for p in paths]
