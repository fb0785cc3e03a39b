"""Layer-wise distillation and task losses."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from adapters.config import LossSettings


class LayerProjections(nn.Module):
    """Student hidden size → teacher hidden size, one per mapped layer. Used only in training."""

    def __init__(self, layer_map: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__()
        self.layer_map = list(layer_map)
        self.proj = nn.ModuleDict({str(s): nn.Linear(student_dim, teacher_dim) for s, _ in layer_map})

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
    rows = torch.cat([torch.full((n,), i, dtype=torch.long) for i, (_, n) in enumerate(spans)]).to(device)
    cols = torch.cat([torch.arange(start, start + n) for start, n in spans]).to(device)
    counts = torch.tensor([n for _, n in spans], dtype=torch.float32, device=device)

    def per_example_mean(x: torch.Tensor) -> torch.Tensor:  # (tokens,) → mean over each example's tokens
        return torch.zeros(len(spans), device=device).index_add_(0, rows, x) / counts

    cos_terms, mse_terms = [], []
    for s_layer, t_layer in projections.layer_map:
        p = projections(s_layer, hidden_states[s_layer][rows, cols].float())
        t = torch.cat([states[t_layer] for states in teacher]).to(device)
        cos_terms.append(1 - per_example_mean(F.cosine_similarity(p, t, dim=-1)))
        sq = (F.layer_norm(p, p.shape[-1:]) - F.layer_norm(t, t.shape[-1:])).pow(2).mean(dim=-1)
        mse_terms.append(per_example_mean(sq))
    cos = torch.cat(cos_terms).mean()
    mse = torch.cat(mse_terms).mean()
    loss = weights.cosine_weight * cos + weights.mse_weight * mse
    return loss, {"cosine": cos.item(), "mse": mse.item()}


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
