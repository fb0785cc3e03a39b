"""`make soak`: many clients for many minutes, some hanging up mid-request; does the server stay whole?

    python -m benchmarks.soak [--url URL | --bundle DIR] [--clients 64] [--minutes 10] [--out DIR]

Each client loops until the time is up: a random route and path (speech-chat AuRA or cascade,
streamed or not; chat completions with an audio part; a transcription) with a clip of real speech
in a random container (wav, flac, ogg, mp3, opus, m4a, webm). One request in ten is abandoned at a
random point: before its answer, or after a random number of streamed chunks. Meanwhile the RSS of
the server and of every process it started is sampled every few seconds.

Reported: answers by status; errors, i.e. any 5xx other than a full queue's 503 (target 0); the
requests still in flight once the load stops, as the server's own gauges count them (target 0);
and the RSS slope over the second half of the run, when start-up allocations have settled.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import os
import random
import time

import httpx
import psutil

from benchmarks.audioset import FORMATS, load_clips, transcode
from benchmarks.layouts import memory
from benchmarks.real_speech import fetch
from benchmarks.report import command_line, machine, machine_line, write_report
from benchmarks.server_process import aura_serve

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ABANDON = 0.1


def _request(rng: random.Random, model: str, data: bytes, fmt: str) -> tuple[str, dict, bool]:
    """(path, httpx keyword arguments, streamed) of one random request."""
    kind = rng.choice(["speech-chat", "speech-chat-cascade", "chat", "transcription"])
    stream = rng.random() < 0.5
    name = f"clip.{fmt}"
    if kind.startswith("speech-chat"):
        form = {"max_tokens": "16", "stream": str(stream).lower(), "mode": "cascade" if kind.endswith("cascade") else "aura"}
        return "/v1/speech-chat", {"files": {"audio": (name, data)}, "data": form}, stream
    if kind == "chat":
        part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt}}
        body = {"model": model, "max_tokens": 16, "stream": stream,
                "messages": [{"role": "user", "content": [part, {"type": "text", "text": "What is said?"}]}]}
        return "/v1/chat/completions", {"json": body}, stream
    return "/v1/audio/transcriptions", {"files": {"file": (name, data)}, "data": {"model": model}}, False


async def client(http: httpx.AsyncClient, rng: random.Random, model: str, clips: list[tuple[str, bytes]], deadline: float,
                 statuses: collections.Counter, errors: list) -> None:
    def record(path: str, status: int, body: bytes) -> None:
        statuses[status] += 1
        if status >= 500 and b"queue_timeout" not in body:  # a full queue's 503 is the limit working
            errors.append({"path": path, "status": status, "body": body[:200].decode(errors="replace")})

    while time.monotonic() < deadline:
        fmt, data = rng.choice(clips)
        path, kwargs, stream = _request(rng, model, data, fmt)
        abandon = rng.random() < ABANDON
        try:
            if not stream:
                try:  # an abandoned request hangs up before its answer
                    r = await asyncio.wait_for(http.post(path, **kwargs), timeout=rng.uniform(0.05, 2.0) if abandon else None)
                    record(path, r.status_code, r.content)
                except TimeoutError:
                    statuses["abandoned"] += 1
                continue
            async with http.stream("POST", path, **kwargs) as r:
                left = rng.randint(1, 8) if abandon else None  # chunks to read before hanging up
                body = b""
                async for chunk in r.aiter_raw():
                    if r.status_code != 200:
                        body += chunk
                    if left is not None:
                        left -= 1
                        if left == 0:
                            break
                if left == 0:
                    statuses["abandoned"] += 1
                else:
                    record(path, r.status_code, body)
        except httpx.HTTPError as e:
            statuses["transport_error"] += 1
            errors.append({"path": path, "error": repr(e)[:200]})


async def sample_memory(pid: int, deadline: float, every: float, out: list) -> None:
    start = time.monotonic()
    while time.monotonic() < deadline:
        # The gateway's own RSS beside the whole tree's: tells the gateway's growth from vLLM's (its
        # engine core touches KV-cache pages as longer batches first reach them).
        gateway = round(psutil.Process(pid).memory_info().rss / 2**20, 1)
        out.append({"t_s": round(time.monotonic() - start, 1), **memory(pid), "gateway_rss_mib": gateway})
        await asyncio.sleep(every)


def slope_mib_per_min(samples: list[dict], key: str = "rss_mib") -> float | None:
    """Least-squares RSS slope over the second half of the samples."""
    half = samples[len(samples) // 2 :]
    if len(half) < 3:
        return None
    ts, ys = [s["t_s"] / 60 for s in half], [s[key] for s in half]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    return round(sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / sum((t - mt) ** 2 for t in ts), 2)


def in_flight(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    out = collections.Counter()
    for line in text.splitlines():
        for name in ("aura_requests_in_flight", "vllm:num_requests_running", "vllm:num_requests_waiting"):
            if line.startswith(name) and not line.startswith("#"):
                out[name] += float(line.rsplit(" ", 1)[1])
    return dict(out)


async def soak(url: str, pid: int, clients: int, minutes: float, seed: int) -> dict:
    audio = fetch(os.path.join(ROOT, "artifacts", "real-speech"))
    base = load_clips(audio, limit=8, sample_seed=seed)
    clips = [(fmt, transcode(c, fmt).data) for c in base for fmt in FORMATS]
    model = httpx.get(url + "/v1/models", timeout=10).json()["data"][0]["id"]
    statuses: collections.Counter = collections.Counter()
    errors: list = []
    samples: list = []
    deadline = time.monotonic() + 60 * minutes
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(300), limits=limits) as http:
        await asyncio.gather(sample_memory(pid, deadline, 5.0, samples),
                             *(client(http, random.Random(seed * 1000 + i), model, clips, deadline, statuses, errors)
                               for i in range(clients)))
    await asyncio.sleep(5)  # aborted requests drain
    return {"clients": clients, "minutes": minutes, "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "requests": sum(statuses.values()), "errors": errors, "in_flight_after": in_flight(url),
            "rss_slope_mib_per_min": slope_mib_per_min(samples), "gateway_rss_slope_mib_per_min": slope_mib_per_min(samples, "gateway_rss_mib"),
            "memory_samples": samples,
            "health_after": httpx.get(url + "/health", timeout=10).status_code}


def markdown(result: dict) -> str:
    s = result["memory_samples"]
    return "\n".join([
        f"# Soak: {result['clients']} clients for {result['minutes']:g} minutes, {ABANDON:.0%} of requests abandoned\n",
        f"Machine: {machine_line(result['machine'])}. Command: `{result['command']}`. Mixed routes, paths, streaming and "
        f"seven containers of real speech.\n",
        "| requests | answers by status | errors (5xx but a full queue's 503, transport) | in flight after | "
        "RSS first → last sample (MiB) | RSS slope, second half | of which the gateway process | /health after |",
        "|---|---|---|---|---|---|---|---|",
        f"| {result['requests']} | {', '.join(f'{k}: {v}' for k, v in result['statuses'].items())} | {len(result['errors'])} | "
        f"{', '.join(f'{k} {v:g}' for k, v in result['in_flight_after'].items())} | "
        f"{s[0]['rss_mib']:,.0f} → {s[-1]['rss_mib']:,.0f} | {result['rss_slope_mib_per_min']} MiB/min | "
        f"{result['gateway_rss_slope_mib_per_min']} MiB/min ({s[0]['gateway_rss_mib']:,.0f} → {s[-1]['gateway_rss_mib']:,.0f}) | "
        f"{result['health_after']} |",
    ]) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=os.path.join(ROOT, "artifacts", "tiny", "bundle"), help="bundle for the server it starts")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S") + "-soak"))
    a = p.parse_args(argv)
    server = aura_serve("--bundle", a.bundle, "--max-model-len", "512", "--gpu-memory-utilization", "0.1",
                        log_path=os.path.join(ROOT, "artifacts", "soak-server.log")).wait_ready(600)
    try:
        result = asyncio.run(soak(server.url, server.proc.pid, a.clients, a.minutes, a.seed))
    finally:
        server.stop()
    result = {"benchmark": "soak", "command": command_line(), "machine": machine(), **result}
    write_report(a.out, "soak", result, markdown(result))


if __name__ == "__main__":
    main()
