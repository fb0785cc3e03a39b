"""Do two runs agree? Side-by-side ratios (cascade ÷ AuRA, audio ÷ text) of two results folders.

    python -m benchmarks.compare benchmarks/results/RUN_A benchmarks/results/RUN_B
"""

from __future__ import annotations

import argparse
import json
import os

from benchmarks.report import table


def ratios(run: str) -> dict[str, float]:
    out = {}
    with open(os.path.join(run, "loadtest.json")) as f:
        for lv in json.load(f)["levels"]:
            for k, v in lv.get("ratios", {}).items():
                out[f"cascade÷aura {k} {lv['label']}"] = v
    with open(os.path.join(run, "overhead.json")) as f:
        for lv in json.load(f)["levels"]:
            out[f"audio÷text ttft_p50 c={lv['concurrency']}"] = lv["ttft_ratio_p50"]
            out[f"audio÷text e2e_p50 c={lv['concurrency']}"] = lv["e2e_ratio_p50"]
    return out


def compare(a: str, b: str) -> str:
    ra, rb = ratios(a), ratios(b)
    rows = []
    for key in ra:
        if key in rb:
            change = (rb[key] - ra[key]) / ra[key] * 100
            rows.append([key, f"{ra[key]:.3f}", f"{rb[key]:.3f}", f"{change:+.0f} %"])
    return table(["ratio", os.path.basename(a.rstrip("/")), os.path.basename(b.rstrip("/")), "change"], rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a")
    p.add_argument("run_b")
    a = p.parse_args(argv)
    print(compare(a.run_a, a.run_b))


if __name__ == "__main__":
    main()
