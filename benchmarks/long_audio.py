"""Long audio, both paths: one file of real speech minutes long through /v1/audio/transcriptions.

    python -m benchmarks.long_audio [--url URL --model NAME] [--minutes 5] [--out DIR]

The file is Asterisk's real recordings (benchmarks.real_speech), in manifest order from a seeded
shuffle, with 0.8 s of silence between clips, until it lasts --minutes. Each path transcribes it
once (verbose_json: segments with times); the WER compares each joined transcript with the
references joined in the same order. Without --url a server is started on the default model.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import time

import httpx
import numpy as np
import soundfile as sf

from adapters.data.manifest import read_manifest
from adapters.runtime.audio import load_audio
from adapters.runtime.text import wer
from benchmarks.real_speech import fetch
from benchmarks.report import command_line, machine, machine_line, write_report
from benchmarks.server_process import aura_serve

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RATE = 16000
GAP_S = 0.8


def long_file(manifest: str, minutes: float, seed: int = 0) -> tuple[bytes, list[str], float]:
    """(FLAC bytes, the clips' references in order, seconds)."""
    entries = read_manifest(manifest)
    random.Random(seed).shuffle(entries)
    parts, refs, total = [], [], 0.0
    for e in entries:
        if total >= 60 * minutes:
            break
        wave = load_audio(e.audio)
        parts += [wave, np.zeros(int(GAP_S * RATE), np.float32)]
        refs.append(e.text)
        total += wave.shape[0] / RATE + GAP_S
    buf = io.BytesIO()
    sf.write(buf, np.concatenate(parts), RATE, format="FLAC")
    return buf.getvalue(), refs, total


def transcribe(url: str, model: str, data: bytes) -> tuple[dict, float]:
    t = time.perf_counter()
    r = httpx.post(url + "/v1/audio/transcriptions", files={"file": ("long.flac", data)},
                   data={"model": model, "response_format": "verbose_json"}, timeout=1800)
    r.raise_for_status()
    return r.json(), time.perf_counter() - t


def markdown(result: dict) -> str:
    lines = [f"# Long audio: {result['seconds'] / 60:.1f} minutes of real speech in one file\n",
             f"Machine: {machine_line(result['machine'])}. Command: `{result['command']}`. "
             f"{result['clips']} Asterisk recordings (real speech, test material: never trained on), {GAP_S} s apart; "
             "one request per path, `response_format=verbose_json`.\n",
             "| path | segments | longest segment (s) | WER of the joined transcript | wall time (s) | real-time factor |",
             "|---|---|---|---|---|---|"]
    for path, r in result["paths"].items():
        lines.append(f"| {path} | {r['segments']} | {r['longest_segment_s']:.1f} | {100 * r['wer']:.1f} % | {r['wall_s']:.1f} | "
                     f"{r['wall_s'] / result['seconds']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server (default: start one on the default model)")
    p.add_argument("--model", help="the AuRA model name (default: the server's); the cascade is MODEL-cascade")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S") + "-long-audio"))
    a = p.parse_args(argv)
    data, references, seconds = long_file(fetch(os.path.join(ROOT, "artifacts", "real-speech")), a.minutes, a.seed)
    server = None if a.url else aura_serve(log_path=os.path.join(ROOT, "artifacts", "long-audio-server.log")).wait_ready(900)
    url = a.url or server.url
    try:
        models = {m["id"]: m["path"] for m in httpx.get(url + "/v1/models", timeout=10).json()["data"]}
        model = a.model or next(k for k, v in models.items() if v == "aura")
        paths = {}
        for path, name in (("aura", model), ("cascade", model + "-cascade")):
            out, wall = transcribe(url, name, data)
            paths[path] = {"model": name, "segments": len(out["segments"]), "wall_s": round(wall, 2),
                           "longest_segment_s": max(s["end"] - s["start"] for s in out["segments"]),
                           "wer": round(wer([" ".join(references)], [out["text"]]), 4), "text": out["text"], "segment_times":
                           [[s["start"], s["end"]] for s in out["segments"]]}
    finally:
        if server is not None:
            server.stop()
    result = {"benchmark": "long_audio", "command": command_line(), "machine": machine(), "seconds": round(seconds, 1),
              "clips": len(references), "references": references, "paths": paths}
    write_report(a.out, "long_audio", result, markdown(result))


if __name__ == "__main__":
    main()
