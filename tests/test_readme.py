"""The README's examples, run as written against the test server: only the port and the model name
(the tests serve a tiny model, the README the default one) are the test server's."""

import os
import re
import subprocess
import sys

import pytest

from adapters.weights.pretrained import DEFAULT_MODEL

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def section(name: str) -> str:
    return open(README).read().split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str, name: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(name), re.S)


def test_security_section_states_every_limit_with_the_code_s_default():
    from service.settings import Settings

    rows = dict(re.findall(r"^\| `--([a-z-]+)` \| ([^|]*?) \|", section("Security"), re.M))
    limits = {name for name in Settings.model_fields if name.startswith(("max_", "queue_", "allow_"))}
    assert limits <= {flag.replace("-", "_") for flag in rows}, "limits missing from the README's table"
    for flag, documented in rows.items():
        default = Settings.model_fields[flag.replace("-", "_")].default
        assert documented == ("off" if default is False else f"{default:g}"), flag


@pytest.mark.vllm
def test_curl_examples(server, model, tmp_path):
    (script,) = blocks("sh", "Try it")
    script = script.replace("http://localhost:8000", server.url).replace(DEFAULT_MODEL, model)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert '"error"' not in out.stdout, out.stdout
    assert out.stdout.count('"usage"') >= 3 and '"transcript"' in out.stdout and "data: [DONE]" in out.stdout


@pytest.mark.vllm
def test_openai_python_example(server, model, tmp_path, speech_wav):
    (code,) = blocks("python", "Try it")
    (tmp_path / "hello.wav").write_bytes(speech_wav)
    code = code.replace("http://localhost:8000", server.url).replace(DEFAULT_MODEL, model)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "CompletionUsage" in out.stdout
