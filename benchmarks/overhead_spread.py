"""The audio-path overhead, run again and again: its spread, and what the front end's thread budget does to it.

    python -m benchmarks.overhead_spread [--threads 2,1] [--runs 3] [--out DIR]

For each --frontend-threads value a server is started on the default model (cascade off, so only
the AuRA engine runs), then benchmarks.overhead runs --runs times back to back against it (c=1:
audio prompts against text prompts of the same length, interleaved).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx

from benchmarks import overhead
from benchmarks.real_speech import fetch
from benchmarks.report import command_line, machine, machine_line, write_report
from benchmarks.server_process import aura_serve

CAVEAT = """Read with care: on the single-engine layout a text prompt runs on the base model and an audio prompt
through the AuRA LoRA as well, so these ratios include the LoRA's cost (`benchmarks.layouts` measures it:
AuRA throughput on one engine against the merged model), not only the front end's."""
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def markdown(result: dict) -> str:
    lines = [f"# Audio-path overhead, {result['runs']} runs back to back per setting\n",
             f"Machine: {machine_line(result['machine'])}. Command: `{result['command']}`. Each run: "
             f"`benchmarks.overhead` at c=1, {result['requests']} requests (audio and text interleaved), cascade off.\n",
             "| gateway torch threads (`--frontend-threads`) | audio÷text TTFT p50, per run | spread (max − min) | "
             "front end, ms per audio-second, per run |", "|---|---|---|---|"]
    for threads, runs in result["settings"].items():
        ratios, front = [r["ttft_ratio"] for r in runs], [r["front_end_ms"] for r in runs]
        lines.append(f"| {threads} | {' · '.join(f'{x:.2f}×' for x in ratios)} | {max(ratios) - min(ratios):.2f} | "
                     f"{' · '.join(f'{x:.1f}' for x in front)} |")
    best = {t: statistics.median(r["ttft_ratio"] for r in runs) for t, runs in result["settings"].items()}
    lines.append(f"\nTarget: ≤ {overhead.TARGET_RATIO}× in every run. Medians: "
                 + ", ".join(f"{t} thread(s) {m:.2f}×" for t, m in best.items()) + ".")
    lines.append("\n" + CAVEAT)
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="2,1", help="--frontend-threads values to compare (2: torch's default here)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S") + "-overhead-spread"))
    a = p.parse_args(argv)
    audio = fetch(os.path.join(ROOT, "artifacts", "real-speech"))
    settings = {}
    for threads in a.threads.split(","):
        server = aura_serve("--cascade", "off", "--allow-ignore-eos", "--frontend-threads", threads,
                            log_path=os.path.join(ROOT, "artifacts", "overhead-spread-server.log")).wait_ready(900)
        try:
            model = httpx.get(server.url + "/v1/models", timeout=10).json()["data"][0]["id"]
            runs = []
            for i in range(a.runs):
                print(f"--frontend-threads {threads}: run {i + 1}/{a.runs}", flush=True)
                r = overhead.run(overhead.parser().parse_args(["--url", server.url, "--model", model, "--audio", audio, "--limit", "8",
                                                               "--concurrency", "1", "--requests", str(a.requests),
                                                               "--max-tokens", "16", "--no-progress"]))
                runs.append({"ttft_ratio": r["levels"][0]["ttft_ratio_p50"], "e2e_ratio": r["levels"][0]["e2e_ratio_p50"],
                             "front_end_ms": r["front_end_ms_per_audio_second"]})
        finally:
            server.stop()
        settings[threads] = runs
    result = {"benchmark": "overhead_spread", "command": command_line(), "machine": machine(), "runs": a.runs,
              "requests": a.requests, "settings": settings}
    write_report(a.out, "overhead_spread", result, markdown(result))


if __name__ == "__main__":
    main()
