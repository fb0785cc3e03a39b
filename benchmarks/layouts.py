"""One engine or two: memory and throughput of `--engine-layout single` against `separate`.

    python -m benchmarks.layouts [--bundle DIR] [--rounds 2] [--out DIR]

Each round starts a server in each layout in turn (separate, then single), on the same bundle and
settings, and measures:
- memory, once the server is ready and again after the load: RSS and PSS summed over the gateway
  and every process it started (vLLM's engine core and workers). RSS counts a page shared between
  processes once per process; PSS splits it between them, so its sum is the machine's real cost.
- throughput, closed loop at --concurrency: AuRA requests, then cascade requests (benchmarks.loadtest).
Rounds alternate the layouts so that a drift of the machine's speed shows as spread, not as a layout effect.
"""

from __future__ import annotations

import argparse
import os
import time

import psutil

from benchmarks import loadtest
from benchmarks.real_speech import fetch
from benchmarks.report import command_line, machine, machine_line, spread, write_report
from benchmarks.server_process import aura_serve

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAYOUTS = ("separate", "single")


def memory(pid: int) -> dict[str, float]:
    """RSS and PSS (MiB) of a process and all its descendants."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    rss = pss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss, pss = rss + info.rss, pss + info.pss
    return {"rss_mib": round(rss / 2**20, 1), "pss_mib": round(pss / 2**20, 1), "processes": len(procs)}


def measure(layout: str, bundle: str | None, audio: str, args) -> dict:
    where = ["--bundle", bundle] if bundle else []
    server = aura_serve(*where, "--engine-layout", layout, "--allow-ignore-eos", "--max-concurrency", str(max(args.concurrency, 16)),
                        log_path=os.path.join(ROOT, "artifacts", f"layouts-{layout}.log")).wait_ready(timeout=900)
    try:
        time.sleep(5)  # let start-up allocations settle
        idle = memory(server.proc.pid)
        throughput = {}
        for mode in ("aura", "cascade"):
            lt = loadtest.run(loadtest.parser().parse_args([
                "--url", server.url, "--no-progress", "--audio", audio, "--limit", "16", "--modes", mode,
                "--concurrency", str(args.concurrency), "--requests", str(args.requests), "--max-tokens", str(args.max_tokens),
                "--ignore-eos"]))
            m = lt["levels"][0]["modes"][mode]
            throughput[mode] = {"requests_per_s": m["requests_per_s"], "tokens_per_s": m["output_tokens_per_s"],
                                "errors": m["errors"], "ttft_p50_ms": round(1000 * m["ttft_s_p50"], 1)}
        loaded = memory(server.proc.pid)
    finally:
        server.stop()
    return {"layout": layout, "memory_idle": idle, "memory_loaded": loaded, "throughput": throughput}


def markdown(result: dict) -> str:
    runs = result["runs"]

    def col(layout: str, get) -> list[float]:
        return [get(r) for r in runs if r["layout"] == layout]

    rows = [
        ("RSS, all processes, loaded (MiB)", lambda r: r["memory_loaded"]["rss_mib"]),
        ("PSS, all processes, loaded (MiB)", lambda r: r["memory_loaded"]["pss_mib"]),
        ("RSS, all processes, idle (MiB)", lambda r: r["memory_idle"]["rss_mib"]),
        ("AuRA throughput (req/s)", lambda r: r["throughput"]["aura"]["requests_per_s"]),
        ("cascade throughput (req/s)", lambda r: r["throughput"]["cascade"]["requests_per_s"]),
        ("AuRA TTFT p50 (ms)", lambda r: r["throughput"]["aura"]["ttft_p50_ms"]),
    ]
    lines = [f"# Engine layouts: one engine or two ({len(runs) // 2} rounds; median, min–max)\n",
             f"Machine: {machine_line(result['machine'])}. Command: `{result['command']}`. "
             f"Closed loop at c={result['concurrency']}, {result['requests']} requests per mode, "
             f"{result['max_tokens']} tokens each.\n",
             "| | separate (two engines) | single (one engine, per-request LoRA) | single ÷ separate |", "|---|---|---|---|"]
    for label, get in rows:
        a, b = col("separate", get), col("single", get)
        ratio = [y / x for x, y in zip(a, b, strict=True) if x]
        lines.append(f"| {label} | {spread(a)} | {spread(b)} | {spread(ratio)} |")
    errors = sum(r["throughput"][m]["errors"] for r in runs for m in r["throughput"])
    lines.append(f"\nErrors: {errors}. The ratio column is per round (the two layouts measured back to back).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="bundle to serve (default: the default model)")
    p.add_argument("--audio", help="manifest (default: real speech from Debian's Asterisk prompts)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of both layouts, alternating")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--requests", type=int, default=32, help="requests per mode and layout")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S") + "-layouts"))
    a = p.parse_args(argv)
    audio = a.audio or fetch(os.path.join(ROOT, "artifacts", "real-speech"))
    runs = []
    for i in range(a.rounds):
        for layout in LAYOUTS:
            print(f"round {i + 1}/{a.rounds}: {layout} ...", flush=True)
            runs.append(measure(layout, a.bundle, audio, a))
    result = {"benchmark": "layouts", "command": command_line(), "machine": machine(),
              "concurrency": a.concurrency, "requests": a.requests, "max_tokens": a.max_tokens, "runs": runs}
    write_report(a.out, "layouts", result, markdown(result))


if __name__ == "__main__":
    main()
