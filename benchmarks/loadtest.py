"""Load test: closed-loop concurrency sweep, or open-loop Poisson arrivals, against a running server.

    python -m benchmarks.loadtest --url http://localhost:8000 --audio artifacts/real-speech/manifest.jsonl \\
        --modes aura,cascade --concurrency 1,4,16 --requests 32 --out benchmarks/results/now

Modes are interleaved within each level, so AuRA/cascade ratios are measured side by side. Against any
OpenAI-compatible server (a plain `vllm serve`): `--api chat --model NAME --modes text`, which sends
each clip's reference transcript as a text prompt (an ASR that costs nothing), or `--modes audio-chat`
for servers that take `input_audio` parts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import time

import httpx
from tqdm.auto import tqdm

from benchmarks.audioset import Clip, load_clips
from benchmarks.client import Record, Target, send
from benchmarks.report import command_line, fmt, machine, machine_line, plt, table, write_json
from benchmarks.stats import summarize

STAGES = ("decode", "features", "embed", "asr")


def jobs(clips: list[Clip], modes: list[str], n: int, seed: int = 0) -> list[tuple[str, Clip]]:
    """n jobs, modes interleaved (a, c, a, c, ...), clips shuffled once so every mode sees the same clips."""
    order = clips[:]
    random.Random(seed).shuffle(order)
    clip_cycle = itertools.cycle(order)
    out = []
    while len(out) < n:
        clip = next(clip_cycle)
        for mode in modes:
            out.append((mode, clip))
    return out[:n]


async def _one(http, target: Target, mode: str, clip: Clip, t0: float) -> Record:
    if mode == "text":
        return await send(http, target, "text", None, text=clip.text or target.prompt, clip=clip.name, t_run0=t0)
    api_mode = "aura" if mode == "audio-chat" else mode
    return await send(http, target, api_mode, clip.data, clip=clip.name, t_run0=t0)


async def closed_loop(target: Target, work: list[tuple[str, Clip]], concurrency: int, bar, runner=None) -> tuple[list[Record], float]:
    """`concurrency` clients, each sending its next job as soon as its last one finished."""
    runner = runner or _one
    queue = list(reversed(work))
    records: list[Record] = []
    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        async def worker():
            while queue:
                mode, clip = queue.pop()
                records.append(await runner(http, target, mode, clip, t0))
                bar.update(1)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return records, time.perf_counter() - t0


async def open_loop(target: Target, work: list[tuple[str, Clip]], rate: float, bar, seed: int = 0) -> tuple[list[Record], float]:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    tasks = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=1000)) as http:
        async def fire(mode, clip):
            rec = await _one(http, target, mode, clip, t0)
            bar.update(1)
            return rec

        for mode, clip in work:
            tasks.append(asyncio.create_task(fire(mode, clip)))
            await asyncio.sleep(rng.expovariate(rate))
        records = await asyncio.gather(*tasks)
    return list(records), time.perf_counter() - t0


def by_mode(records: list[Record], modes: list[str], wall_s: float) -> dict[str, dict]:
    return {m: summarize([r for r in records if r.mode == ("aura" if m == "audio-chat" else m)], wall_s) for m in modes}


def markdown(result: dict) -> str:
    out = [f"Machine: {machine_line(result['machine'])}\n", f"Command: `{result['command']}`\n"]
    rows = []
    for level in result["levels"]:
        for mode, s in level["modes"].items():
            rows.append([level["label"], mode, f"{s['ok']}/{s['requests']}", fmt(s["ttft_s_p50"], 1000, 0), fmt(s["ttft_s_p90"], 1000, 0),
                         fmt(s["ttft_s_p99"], 1000, 0), fmt(s["itl_s_p50"], 1000, 1), fmt(s["e2e_s_p50"], 1000, 0),
                         fmt(s["e2e_s_p90"], 1000, 0), fmt(s["e2e_s_p99"], 1000, 0), fmt(s["requests_per_s"], 1, 2),
                         fmt(s["output_tokens_per_s"], 1, 1)])
    out.append(table(["load", "mode", "ok", "TTFT p50 ms", "p90", "p99", "ITL p50 ms", "E2E p50 ms", "p90", "p99", "req/s", "out tok/s"], rows))
    ratios = [[lv["label"], fmt(lv["ratios"].get("ttft_p50")), fmt(lv["ratios"].get("e2e_p50"))] for lv in result["levels"] if lv.get("ratios")]
    if ratios:
        out.append("\nCascade ÷ AuRA (same run, interleaved):\n\n" + table(["load", "TTFT p50", "E2E p50"], [[a, b + "×", c + "×"] for a, b, c in ratios]))
    stage_rows = []
    for level in result["levels"]:
        for mode, s in level["modes"].items():
            ms = s["server_ms_mean"]
            if ms:
                stage_rows.append([level["label"], mode] + [fmt(ms.get(k), 1, 1) for k in (*STAGES, "ttft", "total")])
    if stage_rows:
        out.append("\nServer-side stage means (ms, from the server's own `timings_ms`):\n\n" +
                   table(["load", "mode", *STAGES, "ttft", "total"], stage_rows))
    return "\n".join(out)


def ratios(level_modes: dict[str, dict]) -> dict:
    a, c = level_modes.get("aura"), level_modes.get("cascade")
    if not a or not c or not a.get("ttft_s_p50") or not c.get("ttft_s_p50"):
        return {}
    return {"ttft_p50": round(c["ttft_s_p50"] / a["ttft_s_p50"], 3), "e2e_p50": round(c["e2e_s_p50"] / a["e2e_s_p50"], 3)}


def plots(result: dict, out_dir: str) -> list[str]:
    pyplot = plt()
    files = []
    levels = [lv for lv in result["levels"] if lv["kind"] == "closed"]
    if levels:
        fig, axes = pyplot.subplots(1, 2, figsize=(10, 4))
        for mode in levels[0]["modes"]:
            xs = [lv["concurrency"] for lv in levels]
            for ax, key in zip(axes, ("ttft_s", "e2e_s"), strict=True):
                ax.plot(xs, [lv["modes"][mode][f"{key}_p50"] for lv in levels], marker="o", label=f"{mode} p50")
                ax.plot(xs, [lv["modes"][mode][f"{key}_p90"] for lv in levels], marker=".", linestyle="--", label=f"{mode} p90")
        for ax, title in zip(axes, ("time to first token", "end-to-end"), strict=True):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.set_ylabel("seconds")
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("Latency vs concurrency")
        fig.tight_layout()
        path = os.path.join(out_dir, "latency_vs_concurrency.png")
        fig.savefig(path, dpi=110)
        pyplot.close(fig)
        files.append(path)
    bars = [(f"{mode}\n{lv['label']}", s["server_ms_mean"]) for lv in result["levels"] for mode, s in lv["modes"].items() if s["server_ms_mean"]]
    if bars:
        fig, ax = pyplot.subplots(figsize=(max(6, 1.2 * len(bars)), 4))
        bottoms = [0.0] * len(bars)
        for stage in (*STAGES, "engine"):
            heights = []
            for _, ms in bars:
                pre = sum(ms.get(s, 0) for s in STAGES)
                heights.append(max(0.0, ms.get("ttft", 0) - pre) if stage == "engine" else ms.get(stage, 0))
            if any(heights):
                ax.bar([b[0] for b in bars], heights, bottom=bottoms, label="prefill + queue (to 1st token)" if stage == "engine" else stage)
                bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        ax.set_ylabel("ms (server-side mean)")
        ax.set_title("Where the time to first token goes")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = os.path.join(out_dir, "stage_breakdown.png")
        fig.savefig(path, dpi=110)
        pyplot.close(fig)
        files.append(path)
    return files


def run(args) -> dict:
    clips = load_clips(args.audio, args.limit)
    modes = args.modes.split(",")
    target = Target(args.url.rstrip("/"), api=args.api, model=args.model, api_key=args.api_key, max_tokens=args.max_tokens,
                    temperature=args.temperature, prompt=args.prompt, ignore_eos=args.ignore_eos)
    levels = []
    plan = [("closed", c) for c in args.concurrency] if args.rate is None else [("open", args.rate)]
    if args.warmup:
        asyncio.run(closed_loop(target, jobs(clips, modes, args.warmup * len(modes), args.seed), 1, tqdm(disable=True)))
    for kind, value in plan:
        n = max(args.requests, int(value) * len(modes) * 2) if kind == "closed" else args.requests
        work = jobs(clips, modes, n, args.seed)
        label = f"c={value}" if kind == "closed" else f"{value}/s Poisson"
        with tqdm(total=len(work), desc=f"loadtest {label}", unit="req", disable=args.no_progress) as bar:
            if kind == "closed":
                records, wall = asyncio.run(closed_loop(target, work, int(value), bar))
            else:
                records, wall = asyncio.run(open_loop(target, work, float(value), bar, args.seed))
        summary = by_mode(records, modes, wall)
        levels.append({"kind": kind, "label": label, "concurrency": value if kind == "closed" else None,
                       "rate": value if kind == "open" else None, "modes": summary, "ratios": ratios(summary),
                       "records": [r.to_dict() for r in records]})
    result = {"benchmark": "loadtest", "command": command_line(), "machine": machine(), "target": vars(target),
              "audio": args.audio, "clips": len(clips), "modes": modes, "levels": levels}
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_json(os.path.join(args.out, "loadtest.json"), result)
        result["plots"] = plots(result, args.out)
        with open(os.path.join(args.out, "loadtest.md"), "w") as f:
            f.write(markdown(result))
    return result


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://localhost:8000", help="server base URL")
    p.add_argument("--api", default="speech-chat", choices=["speech-chat", "chat"], help="which API to call")
    p.add_argument("--model", help="model name (chat API; the cascade is MODEL-cascade on this project's server)")
    p.add_argument("--api-key", default=os.environ.get("AURA_API_KEY"), help="bearer key (default: $AURA_API_KEY)")
    p.add_argument("--max-tokens", type=int, default=32, help="completion tokens per request")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature")
    p.add_argument("--prompt", default="Answer the request in one sentence.", help="text sent with each clip")
    p.add_argument("--ignore-eos", action="store_true", help="always generate --max-tokens tokens (vLLM extension)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, default=0, help="shuffling and arrival seed")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(p)
    p.add_argument("--audio", required=True, help="directory of audio files, or a manifest (JSONL: audio, text)")
    p.add_argument("--limit", type=int, help="use at most this many clips")
    p.add_argument("--modes", default="aura,cascade", help="comma-separated: aura, cascade, text, audio-chat")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16],
                   help="closed-loop levels (comma-separated)")
    p.add_argument("--rate", type=float, help="open loop instead: Poisson arrivals per second")
    p.add_argument("--requests", type=int, default=32, help="requests per level (closed loop: at least 2 per client)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured requests per mode first")
    p.add_argument("--out", help="directory for loadtest.json, loadtest.md and plots")
    return p


def main(argv=None) -> None:
    print(markdown(run(parser().parse_args(argv))))


if __name__ == "__main__":
    main()
