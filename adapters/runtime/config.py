"""aura.json: every choice the paper leaves open, recorded with the adapter and the bundle."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from adapters.runtime.embedding import AudioEmbedConfig
from adapters.runtime.errors import BundleError
from adapters.runtime.features import FeatureConfig
from adapters.runtime.prompt import AUDIO_SLOT

FORMAT_VERSION = 1
CONFIG_NAME = "aura.json"


@dataclass
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # Attention and MLP projections of every layer: the LLM's layers must learn to *encode* audio,
    # not just attend to it, so the MLPs are adapted too.
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    layers: list[int] | None = None  # None: all layers


@dataclass
class LossSettings:
    cosine_weight: float = 1.0
    mse_weight: float = 1.0  # on layer-normalised states, so it is scale-free like the cosine
    task_weight: float = 1.0  # next-token cross-entropy on the target text given audio
    # Teacher states standardised per dimension (training-set statistics) and projections without
    # bias, so that predicting the mean teacher state scores nothing (adapters.train.losses.TeacherStandardizer).
    standardize: bool = False

    @property
    def distills(self) -> bool:
        return self.cosine_weight > 0 or self.mse_weight > 0


@dataclass
class AuraConfig:
    base_llm: str
    teacher: str
    features: FeatureConfig
    audio_embed: AudioEmbedConfig
    # (student hidden-state index, teacher hidden-state index); index 0 is the embedding output.
    layer_map: list[tuple[int, int]]
    lora: LoraSettings = field(default_factory=LoraSettings)
    losses: LossSettings = field(default_factory=LossSettings)
    chat_template: str | None = None
    audio_slot: str = AUDIO_SLOT
    transcribe_instruction: str = "Transcribe the audio."
    name: str | None = None  # the model name the gateway serves it under
    # CTranslate2 Whisper for the cascade baseline the gateway serves beside AuRA (optional).
    asr_model: str | None = None
    training: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layer_map"] = [list(p) for p in self.layer_map]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AuraConfig:
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"aura.json format_version {version!r} is not supported (expected {FORMAT_VERSION})")
        d = dict(d)
        return cls(
            base_llm=d.pop("base_llm"),
            teacher=d.pop("teacher"),
            features=FeatureConfig(**d.pop("features")),
            audio_embed=AudioEmbedConfig(**d.pop("audio_embed")),
            layer_map=[tuple(p) for p in d.pop("layer_map")],
            lora=LoraSettings(**d.pop("lora")),
            losses=LossSettings(**d.pop("losses")),
            **d,
        )

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, CONFIG_NAME), "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, directory: str) -> AuraConfig:
        path = os.path.join(directory, CONFIG_NAME)
        if not os.path.isfile(path):
            raise BundleError(f"{directory}: no {CONFIG_NAME}; is this an AuRA bundle or checkpoint?")
        with open(path) as f:
            cfg = cls.from_dict(json.load(f))
        # A committed adapter names its models relative to its own folder ("../../../artifacts/..."),
        # so it works from any checkout; absolute paths and other names are left alone.
        for key in ("base_llm", "teacher", "asr_model"):
            value = getattr(cfg, key)
            if isinstance(value, str) and value.startswith(("./", "../")):
                setattr(cfg, key, os.path.normpath(os.path.join(os.path.abspath(directory), value)))
        return cfg


def default_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Early student layers, mapped monotonically onto the teacher's whole depth.

    The first half of the LLM (at most one student layer per teacher layer) learns to encode audio;
    the later layers keep doing language. Student layer i of k maps to teacher layer round(i*M/k),
    so the last mapped student layer matches the teacher's output.
    """
    k = max(1, min(teacher_layers, student_layers // 2))
    return [(i, max(1, round(i * teacher_layers / k))) for i in range(1, k + 1)]


def parse_layer_map(text: str) -> list[tuple[int, int]]:
    """'1:2,3:4' → [(1, 2), (3, 4)]."""
    pairs = []
    for item in text.split(","):
        s, _, t = item.partition(":")
        try:
            pairs.append((int(s), int(t)))
        except ValueError:
            raise ValueError(f"bad layer map item {item!r}; expected STUDENT:TEACHER, e.g. 1:2,2:4") from None
    return pairs
