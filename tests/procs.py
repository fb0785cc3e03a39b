"""Run `aura serve` (or `vllm serve`) as a real subprocess on a free port, as users do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    def __init__(self, cmd: list[str], ready_path: str, name: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.ready_path = ready_path
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*cmd, "--port", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def logs(self, tail: int = 4000) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()[-tail:]

    def wait_ready(self, timeout: float = 300) -> Process:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def aura_serve(*args: str) -> Process:
    return Process([sys.executable, "-m", "service.cli", "serve", "--log-level", "warning", *args], "/ready", "aura-serve")


def vllm_serve(model_dir: str, *args: str) -> Process:
    return Process([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir, "--enable-prompt-embeds",
                    "--enforce-eager", "--host", "127.0.0.1", *args], "/health", "vllm-serve")
