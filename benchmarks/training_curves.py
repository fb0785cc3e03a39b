"""Training curves of an AuRA adapter, from the history its aura.json carries.

    python -m benchmarks.training_curves adapters/pretrained/aura-gemma3-270m-whisper-base \\
        --out benchmarks/results/training

Writes training.png (distillation and task loss, train and held-out, against step and wall time)
and training.md (the held-out table and the greedy samples logged at each evaluation).
"""

from __future__ import annotations

import argparse
import os

from adapters.runtime.config import AuraConfig
from benchmarks.report import plt, table


def plot(history: dict, path: str, title: str) -> str:
    pyplot = plt()
    train, evals = history["train"], history["eval"]
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "distill", "layer-wise distillation (cosine + normalised MSE)"),
                           (axes[1], "task", "task: next-token cross-entropy on the target text")):
        pts = [(h["step"], h[key]) for h in train if key in h]
        if pts:
            ax.plot(*zip(*pts, strict=True), alpha=0.35, label="train (batch)")
            k = 10  # moving average over 10 logged points: single batches of 8 are noisy
            smooth = [sum(v for _, v in pts[max(0, i - k + 1): i + 1]) / len(pts[max(0, i - k + 1): i + 1]) for i in range(len(pts))]
            ax.plot([s for s, _ in pts], smooth, label="train (moving average)")
        ev = [(h["step"], h[key]) for h in evals if key in h]
        if ev:
            ax.plot(*zip(*ev, strict=True), marker="o", label="held-out")
        ax.set_xlabel("optimizer step")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    hours = train[-1].get("time_s", 0) / 3600 if train else 0
    fig.suptitle(f"{title} ({hours:.1f} h of training)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)
    return path


def markdown(cfg: AuraConfig) -> str:
    evals = cfg.training["history"]["eval"]
    rows = [[h["step"], f"{h.get('distill', float('nan')):.3f}", f"{h.get('task', float('nan')):.3f}"] for h in evals]
    out = [table(["step", "held-out distill", "held-out task"], rows)]
    if evals and evals[-1].get("samples"):
        out.append(f"\nGreedy samples at step {evals[-1]['step']} (held-out, un-merged student):\n")
        out.append(table(["reference", "output"], [[s["reference"], s["output"]] for s in evals[-1]["samples"]]))
    return "\n".join(out)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("adapter", help="checkpoint, committed adapter or bundle folder (its aura.json)")
    p.add_argument("--out", required=True, help="folder for training.png and training.md")
    a = p.parse_args(argv)
    cfg = AuraConfig.load(a.adapter)
    if not cfg.training.get("history", {}).get("train"):
        raise SystemExit(f"{a.adapter}: aura.json has no training history")
    os.makedirs(a.out, exist_ok=True)
    path = plot(cfg.training["history"], os.path.join(a.out, "training.png"), cfg.name or os.path.basename(a.adapter))
    with open(os.path.join(a.out, "training.md"), "w") as f:
        f.write(markdown(cfg) + "\n")
    print(path)
    return path


if __name__ == "__main__":
    main()
