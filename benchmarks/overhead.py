"""The price of the audio path: audio prompts against text prompts of the same length, same engine.

The physical limit of AuRA is a text prompt with as many tokens as the audio prompt (audio
embeddings take one position each, like text tokens). For each clip this finds, over HTTP, a text
prompt whose `prompt_tokens` equals the audio request's, then sends audio and text requests
interleaved through the same chat route and engine, at concurrency 1 and 16, with fixed-length
completions (`ignore_eos`). Reported: TTFT and end-to-end ratios audio ÷ text (target ≤ 1.15×), and
the front-end cost, decode + features + embed time per second of audio, from the server's timings.

    python -m benchmarks.overhead --url http://localhost:8000 --model aura-tiny-qwen2 \\
        --audio artifacts/real-speech/manifest.jsonl --out benchmarks/results/now
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics

import httpx
from tqdm.auto import tqdm

from benchmarks.audioset import Clip, load_clips
from benchmarks.client import Target, send
from benchmarks.loadtest import add_target_args, closed_loop, jobs
from benchmarks.report import command_line, fmt, machine, machine_line, table, write_json
from benchmarks.stats import summarize

TARGET_RATIO = 1.15
FILLER = " hello"  # one token in most vocabularies; calibration corrects it when it is not


async def _prompt_tokens(http, target: Target, audio: bytes | None, text: str | None) -> int:
    rec = await send(http, target, "aura" if audio is not None else "text", audio, text=text, max_tokens=1)
    if not rec.ok:
        raise RuntimeError(f"calibration request failed: {rec.status} {rec.error}")
    return rec.prompt_tokens


async def calibrate(target: Target, clips: list[Clip]) -> dict[str, str]:
    """clip name → a text prompt with exactly the clip's audio-prompt token count (closest found)."""
    texts = {}
    async with httpx.AsyncClient(timeout=300) as http:
        base = await _prompt_tokens(http, target, None, "")
        for clip in clips:
            want = await _prompt_tokens(http, target, clip.data, None)
            k, per_filler = max(1, want - base), 1.0
            for _ in range(8):
                got = await _prompt_tokens(http, target, None, FILLER * k)
                if got == want:
                    break
                per_filler = max(0.25, (got - base) / k)
                k = max(1, k + round((want - got) / per_filler))
            texts[clip.name] = FILLER * k
    return texts


def run(args) -> dict:
    clips = load_clips(args.audio, args.limit)
    target = Target(args.url.rstrip("/"), api="chat", model=args.model, api_key=args.api_key, max_tokens=args.max_tokens,
                    temperature=0.0, prompt=args.prompt, ignore_eos=True)
    texts = asyncio.run(calibrate(target, clips))

    async def runner(http, target, mode, clip, t0):
        if mode == "text":
            return await send(http, target, "text", None, text=texts[clip.name], clip=clip.name, t_run0=t0)
        return await send(http, target, "aura", clip.data, clip=clip.name, t_run0=t0)

    levels = []
    for c in args.concurrency:
        work = jobs(clips, ["audio", "text"], max(args.requests, 4 * c), args.seed)
        work = [("aura" if m == "audio" else m, clip) for m, clip in work]
        asyncio.run(closed_loop(target, work[: 2 * min(c, 4)], c, tqdm(disable=True), runner))  # warm-up
        with tqdm(total=len(work), desc=f"overhead c={c}", unit="req", disable=args.no_progress) as bar:
            records, wall = asyncio.run(closed_loop(target, work, c, bar, runner))
        audio = summarize([r for r in records if r.mode == "aura"], wall)
        text = summarize([r for r in records if r.mode == "text"], wall)
        matched = sum(1 for r in records if r.mode == "aura") and statistics.fmean(
            [r.prompt_tokens for r in records if r.mode == "aura"]) - statistics.fmean([r.prompt_tokens for r in records if r.mode == "text"])
        levels.append({"concurrency": c, "audio": audio, "text": text,
                       "ttft_ratio_p50": round(audio["ttft_s_p50"] / text["ttft_s_p50"], 3),
                       "e2e_ratio_p50": round(audio["e2e_s_p50"] / text["e2e_s_p50"], 3),
                       "prompt_token_gap_mean": round(matched, 2), "records": [r.to_dict() for r in records]})
    front = [(r["server_ms"].get("decode", 0) + r["server_ms"].get("features", 0) + r["server_ms"].get("embed", 0)) / r["audio_seconds"]
             for lv in levels if lv["concurrency"] == min(args.concurrency) for r in lv["records"]
             if r["mode"] == "aura" and r["ok"] and r["audio_seconds"]]
    result = {"benchmark": "overhead", "command": command_line(), "machine": machine(), "target": vars(target), "audio": args.audio,
              "clips": len(clips), "target_ratio": TARGET_RATIO, "levels": levels,
              "front_end_ms_per_audio_second": round(statistics.fmean(front), 2) if front else None}
    if args.out:
        write_json(os.path.join(args.out, "overhead.json"), result)
        with open(os.path.join(args.out, "overhead.md"), "w") as f:
            f.write(markdown(result))
    return result


def markdown(result: dict) -> str:
    rows = []
    for lv in result["levels"]:
        a, t = lv["audio"], lv["text"]
        verdict = "✅" if max(lv["ttft_ratio_p50"], lv["e2e_ratio_p50"]) <= result["target_ratio"] else "❌"
        rows.append([lv["concurrency"], f"{a['ok']}+{t['ok']}", fmt(a["prompt_tokens_mean"], 1, 0), fmt(lv["prompt_token_gap_mean"], 1, 2),
                     fmt(a["ttft_s_p50"], 1000, 1), fmt(t["ttft_s_p50"], 1000, 1), f"{lv['ttft_ratio_p50']:.3f}×",
                     fmt(a["e2e_s_p50"], 1000, 0), fmt(t["e2e_s_p50"], 1000, 0), f"{lv['e2e_ratio_p50']:.3f}×", verdict])
    out = [f"Machine: {machine_line(result['machine'])}\n", f"Command: `{result['command']}`\n",
           table(["concurrency", "requests (audio+text)", "prompt tokens", "token gap", "TTFT audio p50 ms", "TTFT text p50 ms",
                  "TTFT ratio", "E2E audio p50 ms", "E2E text p50 ms", "E2E ratio", f"≤ {result['target_ratio']}×"], rows),
           f"\nFront end (decode + features + embed), server-side: {fmt(result['front_end_ms_per_audio_second'], 1, 1)} ms per second of audio.\n"]
    return "\n".join(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(p)
    p.add_argument("--audio", required=True, help="directory of audio files, or a manifest")
    p.add_argument("--limit", type=int, default=8, help="clips to use")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16], help="levels")
    p.add_argument("--requests", type=int, default=32, help="requests per level (half audio, half text)")
    p.add_argument("--out", help="directory for overhead.json and overhead.md")
    return p


def main(argv=None) -> None:
    p = parser()
    args = p.parse_args(argv)
    if not args.model:
        p.error("--model is required (the AuRA model name, see GET /v1/models)")
    print(markdown(run(args)))


if __name__ == "__main__":
    main()
