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

from adapters.features import FeatureConfig, log_mel


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
        mel = log_mel(torch.as_tensor(wave).to(self.device), self.features)
        hidden = self._encode(mel[None])
        states = {}
        for layer in layers:
            h = hidden[layer][0].float().T[None]  # (1, d, time)
            states[layer] = torch.nn.functional.adaptive_avg_pool1d(h, num_tokens)[0].T.cpu().contiguous()
        return states


    def _encode(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states [embeddings, layer 1, ..., final layer (normed)], as WhisperEncoder's
        output_hidden_states gives them, for an unpadded mel of any length up to 30 s."""
        enc = self.encoder
        x = torch.nn.functional.gelu(enc.conv1(mel))
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        hidden = [x]
        for layer in enc.layers:
            x = layer(x, None)
            x = x[0] if isinstance(x, tuple) else x
            hidden.append(x)
        hidden[-1] = enc.layer_norm(x)
        return hidden


class TeacherCache:
    """Teacher states on disk, one safetensors file per (clip, teacher, layers, token count)."""

    def __init__(self, teacher: Teacher, directory: str):
        self.teacher = teacher
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _key(self, wave: np.ndarray, layers: list[int], num_tokens: int) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        h.update(f"{os.path.abspath(self.teacher.path)}|{layers}|{num_tokens}|unpadded".encode())
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
