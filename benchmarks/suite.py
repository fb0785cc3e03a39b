"""`make bench`: start a server on the default bundle, run the short default suite, write results.

    python -m benchmarks.suite                       # → benchmarks/results/<date-time>/
    python -m benchmarks.suite --url http://host:8000 --model NAME    # against a server already running

Each run writes loadtest.*, overhead.*, quality.* and the plots into its own folder, plus
summary.md; when it started the server itself, also raw_vllm.* (the gateway ÷ a plain `vllm serve` of
the same engine, benchmarks.raw_vllm); `--publish` also rewrites benchmarks/RESULTS.md from that folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import httpx

from adapters.cli import default_bundle
from benchmarks import loadtest, overhead, quality, raw_vllm
from benchmarks.publish import publish
from benchmarks.real_speech import fetch
from benchmarks.report import machine, machine_line, write_report
from benchmarks.server_process import ServerProcess, aura_serve
from service.settings import Settings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def start_server(bundle: str | None, port: int) -> ServerProcess:
    where = ["--bundle", bundle] if bundle else []  # none: the default model
    server = aura_serve(*where, "--allow-ignore-eos", port=port, log_path=os.path.join(ROOT, "artifacts", "bench-server.log"))
    try:
        return server.wait_ready(timeout=600)
    except RuntimeError as e:
        raise SystemExit(f"{e}\n(whole log: artifacts/bench-server.log)") from None


# Extra quality sets: (label, manifest file name in --heldout, what it is).
HELDOUT_SETS = [
    ("heldout-seen", "heldout-seen.jsonl", "synthetic speech: sentences never trained on, voices seen in training"),
    ("heldout-voice", "heldout-voice.jsonl", "synthetic speech: sentences never trained on, a voice never trained on (Festival rab)"),
    ("heldout-prose", "heldout-prose.jsonl", "synthetic speech: free-form prose never trained on (Debian fortunes), voices seen in training"),
]
REAL_FORMATS = "wav,flac,mp3,opus,m4a,webm"


def run_suite(url: str, model: str, audio: str, out: str, quick: bool, quality_limit: int = 20, heldout: str | None = None) -> dict:
    common = ["--url", url, "--no-progress"]
    lt = loadtest.run(loadtest.parser().parse_args(common + ["--audio", audio, "--limit", "16", "--modes", "aura,cascade", "--concurrency", "1,4,16",
                                              "--requests", "16" if quick else "32", "--max-tokens", "16", "--ignore-eos", "--out", out]))
    ov = overhead.run(overhead.parser().parse_args(common + ["--model", model, "--audio", audio, "--limit", "8", "--concurrency", "1,16",
                                              "--requests", "16" if quick else "32", "--max-tokens", "16", "--out", out]))
    limit = "8" if quick else str(quality_limit)
    # Real speech goes out round-robin in six encodings, the same bytes to both paths.
    ql = quality.run(quality.parser().parse_args(["--url", url, "--no-progress", "--model", model, "--manifest", audio, "--limit", limit,
                                   "--sample-seed", "0", "--formats", REAL_FORMATS, "--examples", "10", "--max-tokens", "16", "--out", out]))
    results = {"loadtest": lt, "overhead": ov, "quality": ql}
    for label, name, _ in HELDOUT_SETS if heldout else []:
        results[f"quality-{label}"] = quality.run(quality.parser().parse_args([
            "--url", url, "--no-progress", "--model", model, "--manifest", os.path.join(heldout, name), "--limit", limit,
            "--sample-seed", "0", "--instruction", "", "--examples", "10", "--max-tokens", "16", "--out", os.path.join(out, f"quality-{label}")]))
    return results


def summary(results: dict, out: str, command: str, model: str) -> str:
    rel = os.path.relpath(out, HERE)
    parts = [
        f"# Benchmark run {os.path.basename(out)}\n",
        f"Machine: {machine_line(results['loadtest']['machine'])}\n",
        f"Command: `{command}` · model `{model}` · files: `benchmarks/{rel}/`\n",
        "## Load test (AuRA vs cascade, interleaved)\n", open(os.path.join(out, "loadtest.md")).read().split("\n", 4)[-1],
        f"\n![latency vs concurrency]({rel}/latency_vs_concurrency.png)\n\n![stage breakdown]({rel}/stage_breakdown.png)\n",
        "## Audio-path overhead (audio vs text prompts of equal length, same engine)\n", open(os.path.join(out, "overhead.md")).read().split("\n", 4)[-1],
        "## Quality: real human speech (Asterisk prompts, six encodings)\n", open(os.path.join(out, "quality.md")).read().split("\n", 4)[-1],
    ]
    for label, _, what in HELDOUT_SETS:
        if f"quality-{label}" in results:
            parts += [f"## Quality: {what}\n", open(os.path.join(out, f"quality-{label}", "quality.md")).read().split("\n", 4)[-1]]
    if "raw_vllm" in results:
        parts.append("#" + open(os.path.join(out, "raw_vllm.md")).read())
    return "\n".join(parts)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server (default: start one on --bundle)")
    p.add_argument("--model", help="model name (default: the server's AuRA model)")
    p.add_argument("--bundle", help="bundle to serve (default: the default model, built on first use)")
    p.add_argument("--port", type=int, default=8011, help="port for the server this command starts")
    p.add_argument("--audio", default=None, help="manifest (default: real speech from Debian's Asterisk prompts)")
    p.add_argument("--out", default=None, help="results folder (default: benchmarks/results/<date-time>)")
    p.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    p.add_argument("--quality-limit", type=int, default=20, help="clips per quality set (a seeded sample)")
    p.add_argument("--heldout", help="folder with the corpus's heldout-seen/-voice/-prose.jsonl (`python -m adapters.data.corpus DIR --only heldout`)")
    p.add_argument("--publish", action="store_true", help="rewrite benchmarks/RESULTS.md from this run")
    a = p.parse_args(argv)
    command = "python -m benchmarks.suite " + " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv))
    out = a.out or os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S"))
    os.makedirs(out, exist_ok=True)
    audio = a.audio or fetch(os.path.join(ROOT, "artifacts", "real-speech"))
    server = None
    url = a.url
    if not url:
        print(f"starting a server on {a.bundle or 'the default model'} ...", flush=True)
        server = start_server(a.bundle, a.port)
        url = server.url
    try:
        models = {m["id"]: m["path"] for m in httpx.get(url + "/v1/models", timeout=10).json()["data"]}
        model = a.model or next(k for k, v in models.items() if v == "aura")
        results = run_suite(url, model, audio, out, a.quick, a.quality_limit, a.heldout)
        if server is not None:  # the bundle is known: a plain vLLM server of the same engine beside it
            args = raw_vllm.parser().parse_args(["--url", url, "--rounds", "1" if a.quick else "2", "--requests", "16" if a.quick else "32"])
            settings = Settings(bundle=a.bundle or default_bundle())  # what start_server's `aura serve` runs with
            results["raw_vllm"] = raw_vllm.run(url, settings, audio, args)
            write_report(out, "raw_vllm", results["raw_vllm"], raw_vllm.markdown(results["raw_vllm"]))
    finally:
        if server is not None:
            server.stop()
    text = summary(results, out, command, model)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "machine.json"), "w") as f:
        json.dump(machine(), f, indent=1)
    if a.publish:
        publish(out)
    print(text)
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
