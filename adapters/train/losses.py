"""Layer-wise distillation and task losses."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from adapters.runtime.config import LossSettings


class LayerProjections(nn.Module):
    """Student hidden size → teacher hidden size, one per mapped layer. Used only in training."""

    def __init__(self, layer_map: list[tuple[int, int]], student_dim: int, teacher_dim: int, bias: bool = True):
        super().__init__()
        self.layer_map = list(layer_map)
        self.proj = nn.ModuleDict({str(s): nn.Linear(student_dim, teacher_dim, bias=bias) for s, _ in layer_map})

    def forward(self, student_layer: int, h: torch.Tensor) -> torch.Tensor:
        return self.proj[str(student_layer)](h)


def distill_loss(
    hidden_states: tuple[torch.Tensor, ...],
    spans: list[tuple[int, int]],
    teacher: list[dict[int, torch.Tensor]],
    projections: LayerProjections,
    weights: LossSettings,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cosine and/or MSE between projected student states at the audio positions and teacher states.

    Both sides are layer-normalised for the MSE so that it measures shape, not scale (Whisper's
    deeper layers have much larger activations than early LLM layers).
    """
    # All examples' audio positions at once: one projection per layer, and per-example means by
    # index_add, so the cost does not grow with launches per example (it starved a GPU).
    device = hidden_states[0].device
    rows, counts = _token_examples([n for _, n in spans], device)
    cols = torch.cat([torch.arange(start, start + n) for start, n in spans]).to(device)

    def predict(s_layer: int, t: torch.Tensor) -> torch.Tensor:
        return projections(s_layer, hidden_states[s_layer][rows, cols].float())

    return _layer_losses(predict, projections.layer_map, teacher, rows, counts, weights)


def mean_baseline(teacher: list[dict[int, torch.Tensor]], layer_map: list[tuple[int, int]], weights: LossSettings) -> dict[str, float]:
    """The distillation loss of a student that ignores the audio and predicts, at every position, the
    mean teacher state of these clips. A distillation loss near this says nothing about hearing."""
    rows, counts = _token_examples([next(iter(states.values())).shape[0] for states in teacher], torch.device("cpu"))
    means = {t: torch.cat([states[t] for states in teacher]).float().mean(dim=0) for _, t in layer_map}

    def predict(s_layer: int, t: torch.Tensor) -> torch.Tensor:
        return means[dict(layer_map)[s_layer]].expand_as(t)

    with torch.no_grad():
        loss, parts = _layer_losses(predict, layer_map, teacher, rows, counts, weights)
    return {**parts, "distill": loss.item()}


def _token_examples(lengths: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(the example index of every token when the examples' tokens are concatenated, tokens per example)."""
    rows = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(lengths)]).to(device)
    return rows, torch.tensor(lengths, dtype=torch.float32, device=device)


def _layer_losses(predict, layer_map, teacher, rows, counts, weights: LossSettings) -> tuple[torch.Tensor, dict[str, float]]:
    """Cosine distance and normalised squared error of predict(student layer, teacher states) against
    the teacher states, averaged over each example's tokens, then over examples and layers."""
    device = rows.device

    def per_example_mean(x: torch.Tensor) -> torch.Tensor:  # (tokens,) → mean over each example's tokens
        return torch.zeros(len(counts), device=device).index_add_(0, rows, x) / counts

    cos_terms, mse_terms = [], []
    for s_layer, t_layer in layer_map:
        t = torch.cat([states[t_layer] for states in teacher]).to(device).float()
        p = predict(s_layer, t)
        cos_terms.append(1 - per_example_mean(F.cosine_similarity(p, t, dim=-1)))
        sq = (F.layer_norm(p, p.shape[-1:]) - F.layer_norm(t, t.shape[-1:])).pow(2).mean(dim=-1)
        mse_terms.append(per_example_mean(sq))
    cos = torch.cat(cos_terms).mean()
    mse = torch.cat(mse_terms).mean()
    loss = weights.cosine_weight * cos + weights.mse_weight * mse
    return loss, {"cosine": cos.item(), "mse": mse.item()}


class TeacherStandardizer:
    """Per-dimension mean and standard deviation of each teacher layer over the training clips.

    Standardised targets take away the distillation loss's shortcut: un-centred Whisper states share
    a large mean direction, so predicting that constant already scores a good cosine. Against
    standardised targets (and a projection without bias) the mean predicts zero, i.e. nothing.
    """

    def __init__(self, teacher: list[dict[int, torch.Tensor]], eps: float = 1e-5):
        layers = teacher[0].keys()
        self.stats = {}
        for layer in layers:
            x = torch.cat([states[layer] for states in teacher]).float()
            self.stats[layer] = (x.mean(dim=0), x.std(dim=0) + eps)

    def __call__(self, teacher: list[dict[int, torch.Tensor]]) -> list[dict[int, torch.Tensor]]:
        return [{layer: (v - self.stats[layer][0]) / self.stats[layer][1] for layer, v in states.items()} for states in teacher]


def task_loss(output_head, last_hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the target text only (prompt positions are labelled -100).

    Takes the final (normed) hidden states rather than logits: only the target positions pay for
    the vocabulary projection. Gemma 3's is 262k × 640, so projecting every audio and prompt
    position of a batch cost more than the rest of the forward pass.
    """
    targets = labels[:, 1:]
    keep = targets != -100
    logits = output_head(last_hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep])
