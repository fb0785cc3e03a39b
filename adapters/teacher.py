"""The frozen ASR-encoder teacher: per-layer Whisper encoder states, pooled to the student's rate.

Whisper's encoder only accepts 30 s inputs, so audio is zero-padded to 30 s, encoded, and the
states are sliced back to the real length before pooling. Teacher states are cached on disk, keyed
by the audio's content and the teacher settings, so epochs never recompute them.
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from adapters.features import FeatureConfig, log_mel, num_frames


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
        if wave.shape[0] > self.max_samples:
            raise ValueError(f"the teacher takes at most {self.max_seconds:.0f} s of audio, got {wave.shape[0] / 16000:.1f} s")
        mel = log_mel(wave, self.features, pad_to_samples=self.max_samples)[:, : self.max_frames]
        out = self.encoder(mel[None].to(self.device), output_hidden_states=True)
        real = math.ceil(num_frames(wave.shape[0], self.features) / 2)
        states = {}
        for layer in layers:
            h = out.hidden_states[layer][0, :real].float().T[None]  # (1, d, time)
            states[layer] = torch.nn.functional.adaptive_avg_pool1d(h, num_tokens)[0].T.cpu().contiguous()
        return states


class TeacherCache:
    """Teacher states on disk, one safetensors file per (clip, teacher, layers, token count)."""

    def __init__(self, teacher: Teacher, directory: str):
        self.teacher = teacher
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _key(self, wave: np.ndarray, layers: list[int], num_tokens: int) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        h.update(f"{os.path.abspath(self.teacher.path)}|{layers}|{num_tokens}".encode())
        return h.hexdigest()[:32]

    def get(self, wave: np.ndarray, layers: list[int], num_tokens: int) -> dict[int, torch.Tensor]:
        path = os.path.join(self.directory, self._key(wave, layers, num_tokens) + ".safetensors")
        if os.path.exists(path):
            return {int(k): v for k, v in load_file(path).items()}
        states = self.teacher.layer_states(wave, layers, num_tokens)
        tmp = path + ".tmp"
        save_file({str(k): v for k, v in states.items()}, tmp)
        os.replace(tmp, path)  # atomic, so an interrupted run never leaves a half-written entry
        return states
