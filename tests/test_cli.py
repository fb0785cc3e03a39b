"""The documented CLI flow on tiny models: make-tiny → synth → distill → export, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli


def test_help_documents_every_option():
    import argparse

    from adapters.cli import build_parser
    from service.cli import add_serve

    parser = build_parser([add_serve])
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"serve", "distill", "evaluate", "export", "make-tiny", "synth"}
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help and action.help.strip(), f"aura {name} {action.option_strings or action.dest} has no help"
    assert "--layer-map" in run_cli("distill", "--help").stdout


def test_make_tiny_distill_export_flow(tmp_path, speech_corpus):
    tiny = tmp_path / "tiny"
    out = run_cli("make-tiny", str(tiny))
    assert "meaningless" in out.stdout
    ckpt, bundle = tmp_path / "ckpt", tmp_path / "bundle"
    run_cli("distill", "--teacher", str(tiny / "whisper"), "--llm", str(tiny / "llm"), "--manifest", speech_corpus,
            "--output", str(ckpt), "--steps", "6", "--batch-size", "2", "--embed-width", "32", "--eval-every", "3",
            "--save-every", "3", "--no-progress")
    run_cli("export", str(ckpt), str(bundle))
    cfg = json.loads((bundle / "aura.json").read_text())
    assert cfg["training"]["steps"] == 6 and cfg["training"]["exported_from"] == str(ckpt)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(bundle / "llm"))
    assert (bundle / "audio_embed.safetensors").exists()


def test_user_errors_are_one_line_not_tracebacks(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"audio": "nope.wav", "text": "x"}\n')
    proc = run_cli("distill", "--teacher", "t", "--llm", "l", "--manifest", str(tmp_path / "m.jsonl"), "--output", str(tmp_path / "o"),
                   check=False)
    assert proc.returncode != 0
    assert "m.jsonl:1: audio file" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("export", str(tmp_path), str(tmp_path / "b"), check=False)
    assert proc.returncode != 0 and "no aura.json" in proc.stderr and "Traceback" not in proc.stderr


def test_synth_without_espeak_is_a_clear_error(tmp_path):
    (tmp_path / "t.txt").write_text("hello\n")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # the venv only: no espeak-ng
    proc = subprocess.run([sys.executable, "-m", "service.cli", "synth", str(tmp_path / "t.txt"), str(tmp_path / "o")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "espeak-ng is not installed" in proc.stderr


@pytest.mark.parametrize("bad", ["1:x", "12"])
def test_bad_layer_map_is_rejected(bad, tmp_path):
    proc = run_cli("distill", "--teacher", "t", "--llm", "l", "--manifest", "m", "--output", "o", "--layer-map", bad, check=False)
    assert proc.returncode == 2 and "layer-map" in proc.stderr
