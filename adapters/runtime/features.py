"""Log-mel features with the teacher's (Whisper's) extractor settings, for audio of any length.

The student sees unpadded features (Whisper pads to 30 s; AuRA need not). The mel filter bank is
rebuilt from the settings recorded in aura.json, so serving never needs the teacher's files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from adapters import SAMPLE_RATE


@dataclass(frozen=True)
class FeatureConfig:
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    sample_rate: int = SAMPLE_RATE

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @classmethod
    def from_whisper_dir(cls, path: str) -> FeatureConfig:
        from transformers import WhisperFeatureExtractor

        fe = WhisperFeatureExtractor.from_pretrained(path)
        return cls(n_mels=fe.feature_size, n_fft=fe.n_fft, hop_length=fe.hop_length, sample_rate=fe.sampling_rate)

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=8)
def _mel_filters(cfg: FeatureConfig, device: torch.device) -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    # Exactly WhisperFeatureExtractor's bank: slaney scale and norm, 0-8 kHz.
    bank = mel_filter_bank(
        num_frequency_bins=1 + cfg.n_fft // 2,
        num_mel_filters=cfg.n_mels,
        min_frequency=0.0,
        max_frequency=cfg.sample_rate / 2,
        sampling_rate=cfg.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.asarray(bank, dtype=np.float32)).T.contiguous().to(device)  # (n_mels, n_freq)


def num_frames(num_samples: int, cfg: FeatureConfig) -> int:
    return num_samples // cfg.hop_length


def log_mels(waves: list[np.ndarray], cfg: FeatureConfig, device: torch.device) -> list[torch.Tensor]:
    """log_mel of several clips, computed on `device` after one copy of all the audio there (not one
    synchronising copy per clip)."""
    lengths = [w.shape[0] for w in waves]
    batch = torch.zeros(len(waves), max(lengths))
    for i, w in enumerate(waves):
        batch[i, : lengths[i]] = torch.as_tensor(w)
    batch = batch.to(device)
    return [log_mel(batch[i, :n], cfg) for i, n in enumerate(lengths)]


def pad_frames(mels: list[torch.Tensor]) -> torch.Tensor:
    """(n_mels, frames_i) each → (batch, n_mels, max frames), zeros after each clip: what a
    convolution's own zero padding sees at the end of a clip processed alone."""
    out = mels[0].new_zeros(len(mels), mels[0].shape[0], max(m.shape[-1] for m in mels))
    for i, m in enumerate(mels):
        out[i, :, : m.shape[-1]] = m
    return out


def log_mel(wave: np.ndarray | torch.Tensor, cfg: FeatureConfig, pad_to_samples: int | None = None) -> torch.Tensor:
    """(samples,) mono 16 kHz → (n_mels, frames) Whisper-normalised log-mel, frames = samples // hop.
    Computed on the wave's device: a tensor already on a GPU keeps the STFT off the CPU in training."""
    x = torch.as_tensor(wave, dtype=torch.float32)
    n = x.shape[-1]
    if pad_to_samples is not None and n < pad_to_samples:
        x = torch.nn.functional.pad(x, (0, pad_to_samples - n))
    window = torch.hann_window(cfg.n_fft, device=x.device)
    stft = torch.stft(x, cfg.n_fft, cfg.hop_length, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = _mel_filters(cfg, x.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0
