"""Two processes train like one process with the doubled batch: the gradients are averaged across
processes, once per optimiser step.

On CPU, `accelerate launch --cpu` starts one process unless MPI is set up; torchrun's launcher
(`--multi_gpu`) with ACCELERATE_USE_CPU=true starts two that meet over gloo (DistributedType.MULTI_CPU)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from adapters.runtime.config import AuraConfig

STEPS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distill(tiny, manifest: str, output: str, batch_size: int, processes: int) -> dict:
    args = ["distill", "--teacher", tiny["whisper"], "--llm", tiny["llm"], "--manifest", manifest, "--output", output,
            "--steps", str(STEPS), "--batch-size", str(batch_size), "--lr", "3e-3", "--warmup-steps", "1",
            "--embed-width", "64", "--eval-every", "100", "--save-every", "2", "--log-every", "1",
            "--eval-fraction", "0.1", "--lora-dropout", "0", "--no-progress"]
    if processes == 1:
        cmd = [sys.executable, "-m", "adapters.cli", *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               "-m", "adapters.cli", *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:6])} … failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return AuraConfig.load(output).training


@pytest.fixture(scope="module")
def runs(tiny, speech_corpus, tmp_path_factory):
    one = _distill(tiny, speech_corpus, str(tmp_path_factory.mktemp("one")), batch_size=4, processes=1)
    two = _distill(tiny, speech_corpus, str(tmp_path_factory.mktemp("two")), batch_size=2, processes=2)
    return one, two


def test_two_processes_follow_one_process_with_the_doubled_batch(runs):
    one, two = runs
    assert (one["processes"], two["processes"]) == (1, 2)
    a = {h["step"]: h for h in one["history"]["train"]}
    b = {h["step"]: h for h in two["history"]["train"]}
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    # The same examples each step; the losses differ only in how token means are pooled over the
    # batch (two half-batch means averaged, against one mean), hence a tolerance, not equality.
    for step in a:
        for part in ("distill", "task", "loss"):
            assert b[step][part] == pytest.approx(a[step][part], rel=0.05), (step, part, a[step], b[step])


def test_both_processes_hold_the_same_weights(runs):
    # The trainer compares a fingerprint of every trained weight across processes at each save
    # (steps 2 and 4 here) and fails the run when they differ; the run above finished, so they agreed.
    _, two = runs
    assert two["steps"] == STEPS and two["processes"] == 2
