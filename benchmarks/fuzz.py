"""`make fuzz`: schemathesis over every operation of a live server's OpenAPI schema, thousands of
cases, valid-looking (positive) and malformed (negative). A case may be refused (4xx) but must
never be a server error (5xx), and the server must still be healthy at the end.

    python -m benchmarks.fuzz [--url URL | --bundle DIR] [--cases 2000] [--out DIR]

Random strings are almost never a served model's name, nor random bytes a decodable clip, so most
generated requests would stop at a 404 or a 400 and never reach the engine. Half of the cases (a
seeded draw) therefore get a real model name, and their audio fields a real clip, before they are
sent; the report says how many were answered 200, i.e. reached the engine. `tests/test_fuzz.py`
runs a short version of the same in CI.
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import os
import random
import time

import httpx
import numpy as np
import soundfile as sf

from benchmarks.report import command_line, machine, machine_line, write_report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
AUDIO_FIELDS = ("file", "audio")  # the multipart file fields of /v1/audio/transcriptions and /v1/speech-chat


def real_clip() -> bytes:
    """Half a second of a tone as 16-bit WAV: decodable, short, cheap to embed."""
    t = np.arange(8000) / 16000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Realism:
    """Makes a seeded half of the cases plausible enough to reach the engine, and keeps completions short."""

    def __init__(self, models: list[str], seed: int = 0):
        self.models = models
        self.rng = random.Random(seed)
        self.clip = real_clip()
        self.clip_b64 = base64.b64encode(self.clip).decode()

    def __call__(self, case) -> None:
        body = case.body
        if not isinstance(body, dict):
            return
        if isinstance(body.get("max_tokens"), int):
            body["max_tokens"] = max(1, min(body["max_tokens"], 4))
        if self.rng.random() >= 0.5:
            return
        if "model" in body:
            body["model"] = self.rng.choice(self.models)
        for name in AUDIO_FIELDS:
            if name in body:
                body[name] = self.clip
        messages = body.get("messages")
        for message in messages if isinstance(messages, list) else []:
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict) and isinstance(part.get("input_audio"), dict):
                    part["input_audio"].update(data=self.clip_b64, format="wav")


def fuzz(url: str, cases: int, seed: int = 0) -> dict:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    models = [m["id"] for m in httpx.get(url + "/v1/models", timeout=10).json()["data"]]
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    # The budget goes to the operations that take input: one without (GET /health) has a single case.
    with_input = [op for op in operations if op.method.upper() != "GET"] or operations
    per_run = max(1, cases // (len(with_input) * len(modes)))
    realism = Realism(models, seed)
    statuses: dict[str, collections.Counter] = {}
    failures = []
    for mode in modes:
        for op in operations:
            statuses.setdefault(op.label, collections.Counter())

            @settings(max_examples=per_run, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                realism(case)
                response = case.call(timeout=120)
                statuses[case.operation.label][response.status_code] += 1
                if response.status_code >= 500:
                    failures.append({"operation": case.operation.label, "status": response.status_code,
                                     "body": response.text[:300]})

            try:
                run()
            except Unsatisfiable:  # an operation without inputs has nothing to make malformed
                pass
    health = httpx.get(url + "/health", timeout=10).status_code
    ready = httpx.get(url + "/ready", timeout=10).status_code
    return {"models": models, "examples_per_operation_and_mode": per_run,
            "statuses": {op: dict(sorted(c.items())) for op, c in statuses.items()},
            "cases": sum(sum(c.values()) for c in statuses.values()),
            "reached_engine": sum(c[200] for op, c in statuses.items() if op.startswith("POST /v1/")),
            "server_errors": failures, "health_after": health, "ready_after": ready}


def markdown(result: dict) -> str:
    lines = [f"# Fuzzing: {result['cases']} cases, {len(result['server_errors'])} server errors\n",
             f"Machine: {machine_line(result['machine'])}. Command: `{result['command']}`. Schemathesis, positive and "
             f"negative generation, up to {result['examples_per_operation_and_mode']} examples per operation and mode; half the "
             "cases given a served model's name and a real clip. After the run: "
             f"/health {result['health_after']}, /ready {result['ready_after']}.\n",
             "| operation | cases | answers by status |", "|---|---|---|"]
    for op, counts in result["statuses"].items():
        lines.append(f"| {op} | {sum(counts.values())} | {', '.join(f'{s}: {n}' for s, n in counts.items())} |")
    lines.append(f"\nRequests to the model routes answered 200 (they reached the engine): {result['reached_engine']}.")
    for f in result["server_errors"][:20]:
        lines.append(f"- {f['operation']}: {f['status']} {f['body']!r}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from benchmarks.server_process import aura_serve

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server (default: start one on --bundle)")
    p.add_argument("--bundle", default=os.path.join(ROOT, "artifacts", "tiny", "bundle"), help="bundle for the server it starts")
    p.add_argument("--cases", type=int, default=2000, help="about how many cases in all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S") + "-fuzz"))
    a = p.parse_args(argv)
    server = None if a.url else aura_serve("--bundle", a.bundle, "--max-model-len", "512", "--gpu-memory-utilization", "0.1",
                                           log_path=os.path.join(ROOT, "artifacts", "fuzz-server.log")).wait_ready(600)
    try:
        result = fuzz(a.url or server.url, a.cases, a.seed)
    finally:
        if server is not None:
            server.stop()
    result = {"benchmark": "fuzz", "command": command_line(), "machine": machine(), **result}
    write_report(a.out, "fuzz", result, markdown(result))
    if result["server_errors"] or result["health_after"] != 200:
        raise SystemExit(f"{len(result['server_errors'])} server errors; /health {result['health_after']}")


if __name__ == "__main__":
    main()
