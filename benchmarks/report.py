"""Results on disk: JSON with the machine and command, Markdown tables, PNG plots."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time


def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = round(int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) / 1048576, 1)
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem_gib, "python": platform.python_version(),
            "platform": platform.platform(), "gpu": _gpu(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": commit}


def _gpu() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        return None


def command_line() -> str:
    """How this run was started, to print beside its numbers."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    prog = f"python -m {spec.name}" if spec else sys.argv[0]
    return " ".join([prog, *map(shlex.quote, sys.argv[1:])])


def write_json(path: str, obj: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=str)
        f.write("\n")


def write_report(out: str, name: str, result: dict, text: str) -> None:
    """A standalone benchmark's NAME.json and NAME.md in `out`; the Markdown is printed too."""
    write_json(os.path.join(out, f"{name}.json"), result)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"results: {out}")


def fmt(v, scale: float = 1.0, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v * scale:.{digits}f}"


def spread(values: list[float]) -> str:
    """Median (min–max) of repeated runs, three significant digits (whole numbers from 100 up)."""
    def short(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

    if len(values) == 1:
        return short(values[0])
    return f"{short(statistics.median(values))} ({short(min(values))}–{short(max(values))})"


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine_line(m: dict) -> str:
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return f"{m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB{gpu}; Python {m['python']}; commit {m['commit']}; {m['date']}"


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
