"""Summaries of request records: percentiles, throughput, error counts."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from benchmarks.client import Record

PCTS = (50, 90, 99)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(records: Iterable[Record], wall_s: float) -> dict:
    recs = list(records)
    ok = [r for r in recs if r.ok]
    out: dict = {"requests": len(recs), "ok": len(ok), "errors": len(recs) - len(ok), "wall_s": round(wall_s, 3),
                 "requests_per_s": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
                 "output_tokens_per_s": round(sum(r.completion_tokens for r in ok) / wall_s, 2) if wall_s > 0 else None}
    series = {
        "ttft_s": [r.ttft_s for r in ok if r.ttft_s is not None],
        "e2e_s": [r.e2e_s for r in ok if r.e2e_s is not None],
        "itl_s": [x for r in ok for x in r.itl_s],
    }
    for name, values in series.items():
        for p in PCTS:
            v = percentile(values, p)
            out[f"{name}_p{p}"] = round(v, 4) if v is not None else None
        out[f"{name}_mean"] = round(statistics.fmean(values), 4) if values else None
    stages: dict[str, list[float]] = {}
    for r in ok:
        for k, v in r.server_ms.items():
            stages.setdefault(k, []).append(v)
    out["server_ms_mean"] = {k: round(statistics.fmean(v), 2) for k, v in stages.items()}
    out["prompt_tokens_mean"] = round(statistics.fmean([r.prompt_tokens for r in ok]), 1) if ok else None
    out["audio_seconds_mean"] = round(statistics.fmean([r.audio_seconds for r in ok]), 3) if ok else None
    errors: dict[str, int] = {}
    for r in recs:
        if not r.ok:
            key = f"{r.status}: {(r.error or '')[:80]}"
            errors[key] = errors.get(key, 0) + 1
    out["error_kinds"] = errors
    return out
