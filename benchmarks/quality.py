"""Quality: AuRA vs cascade on a labelled manifest, through the public API.

Transcription: each clip goes to POST /v1/audio/transcriptions for MODEL (AuRA, its transcription
instruction) and MODEL-cascade (faster-whisper); word error rate against the reference with jiwer,
after normalisation (lower case, punctuation removed, whitespace collapsed).

Instruction following: each clip is sent with an instruction (the manifest's, or --instruction).
The metric is *agreement*: how close a path's answer to the audio is to the answer the same LLM
gives when handed the reference transcript as text (AuRA: MODEL with text; cascade: MODEL-cascade
with text). An audio path that understood the speech perfectly scores 1.0 whatever the LLM's own
quality. Reported as exact-match rate and mean token F1 (SQuAD-style bag-of-words overlap), with
greedy decoding so the comparison is deterministic.

    python -m benchmarks.quality --url http://localhost:8000 --model aura-tiny-qwen2 \\
        --manifest artifacts/real-speech/manifest.jsonl --out benchmarks/results/now
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
from collections import Counter

import httpx
from tqdm.auto import tqdm

from adapters.runtime.text import normalize, wer
from benchmarks.audioset import FORMATS, Clip, load_clips, transcode
from benchmarks.report import command_line, fmt, machine, machine_line, table, write_json


def token_f1(a: str, b: str) -> float:
    ta, tb = normalize(a).split(), normalize(b).split()
    if not ta and not tb:
        return 1.0
    common = sum((Counter(ta) & Counter(tb)).values())
    if common == 0:
        return 0.0
    p, r = common / len(ta), common / len(tb)
    return 2 * p * r / (p + r)


async def _post(http: httpx.AsyncClient, url: str, **kw) -> httpx.Response:
    r = await http.post(url, **kw)
    r.raise_for_status()
    return r


async def transcribe(http, base: str, model: str, clip: Clip, headers: dict) -> str:
    r = await _post(http, base + "/v1/audio/transcriptions", files={"file": (clip.name, clip.data)}, data={"model": model}, headers=headers)
    return r.json()["text"]


async def chat(http, base: str, model: str, headers: dict, instruction: str, max_tokens: int, audio: bytes | None = None,
               transcript: str | None = None) -> str:
    if audio is not None:
        content = [{"type": "input_audio", "input_audio": {"data": base64.b64encode(audio).decode(), "format": "wav"}},
                   {"type": "text", "text": instruction}]
    else:
        content = f"{transcript}\n{instruction}"
    r = await _post(http, base + "/v1/chat/completions", headers=headers,
                    json={"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0})
    return r.json()["choices"][0]["message"]["content"]


async def evaluate(args, clips: list[Clip]) -> dict:
    base = args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    paths = {"aura": args.model, "cascade": f"{args.model}-cascade"}
    rows = []
    async with httpx.AsyncClient(timeout=600) as http:
        for clip in tqdm(clips, desc="quality", unit="clip", disable=args.no_progress):
            row = {"clip": clip.name, "reference": clip.text, "format": os.path.splitext(clip.name)[1].lstrip(".")}
            instruction = clip.instruction or args.instruction
            for path, model in paths.items():
                row[f"{path}_transcript"] = await transcribe(http, base, model, clip, headers)
                if instruction:
                    row[f"{path}_answer"] = await chat(http, base, model, headers, instruction, args.max_tokens, audio=clip.data)
                    row[f"{path}_reference_answer"] = await chat(http, base, model, headers, instruction, args.max_tokens,
                                                                 transcript=clip.text)
            rows.append(row)
    result = {"rows": rows, "paths": {}}
    for path in paths:
        refs = [r["reference"] for r in rows]
        out = {"clips": len(rows), "wer": round(wer(refs, [r[f"{path}_transcript"] for r in rows]), 4)}
        answered = [r for r in rows if f"{path}_answer" in r]
        if answered:
            f1 = [token_f1(r[f"{path}_answer"], r[f"{path}_reference_answer"]) for r in answered]
            out["agreement_f1"] = round(statistics.fmean(f1), 4)
            out["agreement_exact"] = round(statistics.fmean(
                [normalize(r[f"{path}_answer"]) == normalize(r[f"{path}_reference_answer"]) for r in answered]), 4)
        result["paths"][path] = out
    return result


def markdown(result: dict) -> str:
    out = [f"Machine: {machine_line(result['machine'])}\n", f"Command: `{result['command']}`\n"]
    for path, s in result["paths"].items():
        out.append(f"\n**{path}** ({result['models'][path]})\n\n" + table(
            ["clips", "WER", "agreement F1", "agreement exact"],
            [[s["clips"], fmt(s["wer"], 100, 1) + " %", fmt(s.get("agreement_f1"), 1, 3), fmt(s.get("agreement_exact"), 100, 1) + " %"]]))
    formats = sorted({r["format"] for r in result["rows"]})
    if len(formats) > 1:
        rows = []
        for f in formats:
            sub = [r for r in result["rows"] if r["format"] == f]
            refs = [r["reference"] for r in sub]
            rows.append([f, len(sub)] + [fmt(wer(refs, [r[f"{p}_transcript"] for r in sub]), 100, 1) + " %" for p in result["paths"]])
        out.append("\nBy the format the clip was sent in:\n\n" + table(["format", "clips", *(f"{p} WER" for p in result["paths"])], rows))
    examples = result["rows"][: result.get("examples", 5)]
    if examples:
        out.append("\nFirst transcripts:\n\n" + table(["reference", "aura", "cascade"],
                   [[r["reference"], r["aura_transcript"][:80], r["cascade_transcript"][:80]] for r in examples]))
    return "\n".join(out)


def run(args) -> dict:
    clips = [c for c in load_clips(args.manifest, args.limit, args.sample_seed) if c.text]
    if not clips:
        raise SystemExit(f"{args.manifest}: no clips with a reference 'text'")
    formats = [f for f in args.formats.split(",") if f] if args.formats else []
    if formats:  # round-robin: clip i goes out as formats[i % n], the same bytes to both paths
        clips = [transcode(c, formats[i % len(formats)]) for i, c in enumerate(clips)]
    result = asyncio.run(evaluate(args, clips))
    result.update({"benchmark": "quality", "command": command_line(), "machine": machine(), "manifest": args.manifest,
                   "models": {"aura": args.model, "cascade": f"{args.model}-cascade"}, "instruction": args.instruction,
                   "examples": args.examples})
    if args.out:
        write_json(os.path.join(args.out, "quality.json"), result)
        with open(os.path.join(args.out, "quality.md"), "w") as f:
            f.write(markdown(result))
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://localhost:8000", help="server base URL")
    p.add_argument("--model", required=True, help="the AuRA model name; the cascade is MODEL-cascade")
    p.add_argument("--manifest", required=True, help="JSONL with audio and text (optional instruction/response)")
    p.add_argument("--limit", type=int, help="use at most this many clips")
    p.add_argument("--sample-seed", type=int, help="with --limit: a seeded random sample instead of the first clips")
    p.add_argument("--formats", help=f"re-encode clips round-robin into these formats ({','.join(FORMATS)})")
    p.add_argument("--examples", type=int, default=5, help="transcripts shown in the Markdown")
    p.add_argument("--instruction", default="Answer the request in one sentence.",
                   help="instruction for clips without their own ('' to skip the agreement metric)")
    p.add_argument("--max-tokens", type=int, default=32, help="answer length")
    p.add_argument("--api-key", default=os.environ.get("AURA_API_KEY"), help="bearer key (default: $AURA_API_KEY)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", help="directory for quality.json and quality.md")
    return p


def main(argv=None) -> None:
    print(markdown(run(parser().parse_args(argv))))


if __name__ == "__main__":
    main()
