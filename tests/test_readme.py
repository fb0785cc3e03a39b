"""The README's examples, run as written against the test server: only the port and the model name
(the tests serve a tiny model, the README the default one) are the test server's."""

import os
import re
import subprocess
import sys

import pytest

from adapters.weights.pretrained import DEFAULT_MODEL

pytestmark = pytest.mark.vllm

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def blocks(lang: str, section: str) -> list[str]:
    text = open(README).read()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", part, re.S)


def test_curl_examples(server, model, tmp_path):
    (script,) = blocks("sh", "Try it")
    script = script.replace("http://localhost:8000", server.url).replace(DEFAULT_MODEL, model)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert '"error"' not in out.stdout, out.stdout
    assert out.stdout.count('"usage"') >= 3 and '"transcript"' in out.stdout and "data: [DONE]" in out.stdout


def test_openai_python_example(server, model, tmp_path, speech_wav):
    (code,) = blocks("python", "Try it")
    (tmp_path / "hello.wav").write_bytes(speech_wav)
    code = code.replace("http://localhost:8000", server.url).replace(DEFAULT_MODEL, model)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "CompletionUsage" in out.stdout
