"""Run `aura serve` (or `vllm serve`) as a real subprocess, as users do, and wait until it is ready.
The benchmark suite starts its server with it, and the tests theirs."""

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


class ServerProcess:
    def __init__(self, cmd: list[str], ready_path: str, name: str, *, port: int | None = None, log_path: str | None = None,
                 api_key: str | None = None):
        self.port = port or free_port()
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}  # a keyed server's /ready needs one
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.ready_path = ready_path
        self.log_path = log_path or tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False).name
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)  # artifacts/ is not there on a fresh clone
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([*cmd, "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def logs(self, tail: int = 4000) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-tail:]

    def wait_ready(self, timeout: float = 300) -> ServerProcess:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + self.ready_path, headers=self.headers, timeout=2).status_code == 200:
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


def aura_serve(*args: str, port: int | None = None, log_path: str | None = None, api_key: str | None = None) -> ServerProcess:
    return ServerProcess([sys.executable, "-m", "service.cli", "serve", "--log-level", "warning", *args], "/ready", "aura-serve",
                         port=port, log_path=log_path, api_key=api_key)


VLLM_SERVE = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1"]


def vllm_serve(model_dir: str, *args: str, log_path: str | None = None) -> ServerProcess:
    return ServerProcess([*VLLM_SERVE, "--model", model_dir, "--enable-prompt-embeds", "--enforce-eager", *args], "/health", "vllm-serve",
                         log_path=log_path)
