"""Decompression bombs: 25 MB of compressed silence that would decode to ~100 GB of samples.

    python -m benchmarks.bomb [--url URL | --bundle DIR] [--repeats 5] [--out DIR]

The file: 8-channel 192 kHz digital silence as FLAC, about 4.5 hours in 25 MB (as float32 samples,
~100 GB). Two versions: its honest header, which declares the length, and the same file with the
declared length erased (FLAC allows "unknown"), so the server must decode until its limit to find out.
Each is posted to /v1/speech-chat (limit --max-audio-seconds) and /v1/audio/transcriptions (limit
--max-transcription-seconds), --repeats times. Measured: the answer, the client's wall time, and the
RSS of the gateway process (where audio is decoded) sampled every 2 ms: peak growth during the
request, and growth left afterwards. Target (issue 15): refused in under 1 s, under 100 MB of growth.
The files are made once (a few minutes) and kept under artifacts/bombs/.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import threading
import time

import httpx
import numpy as np
import psutil
import soundfile as sf
from tqdm.auto import tqdm

from benchmarks.report import command_line, machine, machine_line, write_report
from benchmarks.server_process import aura_serve

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZE = 25_000_000
RATE, CHANNELS = 192_000, 8
TARGET_S, TARGET_MIB = 1.0, 100.0


def make_bomb(path: str) -> None:
    """FLAC silence, a minute at a time, until the file reaches SIZE bytes."""
    buf = io.BytesIO()
    minute = np.zeros((RATE * 60, CHANNELS), np.int16)
    with tqdm(total=SIZE, unit="B", unit_scale=True, desc="making the bomb") as bar:
        with sf.SoundFile(buf, "w", samplerate=RATE, channels=CHANNELS, format="FLAC", subtype="PCM_16") as f:
            while buf.tell() < SIZE - 100_000:  # the last minute adds ~94 KB
                f.write(minute)
                bar.update(buf.tell() - bar.n)
    with open(path, "wb") as out:
        out.write(buf.getvalue())


def erase_declared_length(flac: bytes) -> bytes:
    """The same FLAC with STREAMINFO's total-samples field (36 bits) set to 0, "unknown"."""
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0, "STREAMINFO must be the first metadata block"
    info = bytearray(flac)
    start = 8 + 13  # "fLaC", the block header, then 13 bytes into STREAMINFO
    info[start] &= 0xF0  # the field's top 4 bits share a byte with bits-per-sample
    info[start + 1:start + 5] = b"\0\0\0\0"
    return bytes(info)


def bombs() -> dict[str, bytes]:
    folder = os.path.join(ROOT, "artifacts", "bombs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"silence-{CHANNELS}ch-{RATE // 1000}k-25MB.flac")
    if not os.path.isfile(path):
        make_bomb(path)
    honest = open(path, "rb").read()
    return {"declared length": honest, "length erased": erase_declared_length(honest)}


class RssPeak:
    """The peak RSS of one process, sampled in a thread while the block runs."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def post(url: str, route: str, model: str, data: bytes) -> httpx.Response:
    files = {"audio" if route == "/v1/speech-chat" else "file": ("silence.flac", data)}
    form = {"max_tokens": "4"} if route == "/v1/speech-chat" else {"model": model}
    return httpx.post(url + route, files=files, data=form, timeout=600)


def measure(url: str, pid: int, model: str, files: dict[str, bytes], repeats: int) -> list[dict]:
    rows = []
    for label, data in files.items():
        for route in ("/v1/speech-chat", "/v1/audio/transcriptions"):
            for _ in range(repeats):
                before = psutil.Process(pid).memory_info().rss
                with RssPeak(pid) as rss:
                    t0 = time.perf_counter()
                    r = post(url, route, model, data)
                    wall = time.perf_counter() - t0
                time.sleep(0.5)
                after = psutil.Process(pid).memory_info().rss
                rows.append({"file": label, "route": route, "bytes": len(data), "status": r.status_code,
                             "message": r.json().get("error", {}).get("message", "")[:160] if r.status_code != 200 else "",
                             "wall_s": round(wall, 4), "peak_growth_mib": round((max(rss.peak, before) - before) / 2**20, 1),
                             "left_mib": round((after - before) / 2**20, 1)})
    return rows


def markdown(result: dict) -> str:
    lines = [f"# Decompression bombs: {result['bytes'] / 1e6:.1f} MB of FLAC silence ({CHANNELS} channels, {RATE // 1000} kHz, "
             f"{result['hours']:.1f} h, {result['float32_gb']:.0f} GB as float32)\n",
             f"Machine: {machine_line(result['machine'])}. Command: `{result['command']}`. {result['repeats']} requests per row; "
             "time is the client's (the 25 MB upload included); RSS is the gateway process's, sampled every 2 ms.\n",
             "| header | route | answer | time, max (median) | RSS peak growth, max | RSS left after, max | "
             f"< {TARGET_S:g} s and < {TARGET_MIB:g} MiB |", "|---|---|---|---|---|---|---|"]
    for file, route in dict.fromkeys((r["file"], r["route"]) for r in result["rows"]):  # in the order measured
        rows = [r for r in result["rows"] if (r["file"], r["route"]) == (file, route)]
        statuses = sorted({r["status"] for r in rows})
        walls = [r["wall_s"] for r in rows]
        peak = max(r["peak_growth_mib"] for r in rows)
        ok = max(walls) < TARGET_S and peak < TARGET_MIB and all(400 <= s < 500 for s in statuses)
        lines.append(f"| {file} | `{route}` | {', '.join(map(str, statuses))}: {rows[0]['message']} | {max(walls) * 1000:.0f} ms "
                     f"({statistics.median(walls) * 1000:.0f}) | {peak:.1f} MiB | {max(r['left_mib'] for r in rows):.1f} MiB | "
                     f"{'✅' if ok else '❌'} |")
    lines.append("\nA header that declares the length is refused before any sample is decoded. A file that hides it is decoded "
                 "a block at a time up to the route's limit, so its time is that of decoding the limit's worth at the file's rate "
                 "and channels (600 s of 8 channels at 192 kHz on `/v1/audio/transcriptions`), in a worker thread, within the "
                 "admission limit; memory holds only the 16 kHz mono result.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=os.path.join(ROOT, "artifacts", "tiny", "bundle"),
                   help="bundle of the server this starts (decoding does not depend on the model; default: the tiny one)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S") + "-bomb"))
    a = p.parse_args(argv)
    files = bombs()
    data = files["declared length"]
    seconds = sf.info(io.BytesIO(data)).frames / RATE
    server = aura_serve("--bundle", a.bundle, "--cascade", "off", log_path=os.path.join(ROOT, "artifacts", "bomb-server.log")).wait_ready()
    try:
        model = httpx.get(server.url + "/v1/models", timeout=10).json()["data"][0]["id"]
        post(server.url, "/v1/audio/transcriptions", model, data[:200_000])  # warm the route and its imports first
        rows = measure(server.url, server.proc.pid, model, files, a.repeats)
    finally:
        server.stop()
    result = {"benchmark": "bomb", "command": command_line(), "machine": machine(), "bytes": len(data), "hours": seconds / 3600,
              "float32_gb": seconds * RATE * CHANNELS * 4 / 1e9, "repeats": a.repeats, "rows": rows}
    write_report(a.out, "bomb", result, markdown(result))


if __name__ == "__main__":
    main()
