"""Write benchmarks/RESULTS.md from a results folder (and, optionally, an independent second run,
and the reports of benchmarks run on their own: benchmarks.layouts, benchmarks.long_audio).

    python -m benchmarks.publish benchmarks/results/RUN_A [--compare-with benchmarks/results/RUN_B] [--extra DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os

from benchmarks.compare import compare

HERE = os.path.dirname(os.path.abspath(__file__))

TINY_NOTE = """> **Read these numbers as plumbing, not as model quality.** This run served the tiny random-weight
> bundle from `aura make-tiny` (a 2-layer LLM, a 2-layer Whisper). Its WER and agreement are meaningless.
> Its cascade is unfairly slow: the random Whisper decoder never emits end-of-text, so faster-whisper
> decodes to its 448-token limit on every clip (about 2 s of CPU each), and on 2 cores that also slows
> every other request in the run. What the run does show: the AuRA front end's cost per second of
> audio, the overhead of an audio prompt against a text prompt of the same length on the same engine,
> and that every path works under load. `make bench` on the default model gives the real numbers.
"""


def model_section(model: str, run: str) -> str:
    """The served adapter's model card and training curves, when it is a committed adapter."""
    from adapters.weights import pretrained
    from benchmarks import training_curves

    src = pretrained.adapter_dir(model)
    card = os.path.join(src, "README.md")
    if not os.path.isfile(card):
        return ""
    curves = training_curves.main([src, "--out", run])
    rel = os.path.relpath(curves, HERE)
    text = open(card).read().split("\n", 1)[1]  # the card's own title is replaced by ours
    samples = open(os.path.join(run, "training.md")).read()
    return (f"## The model: `{model}`\n\nFrom its model card (`adapters/pretrained/{model}/README.md`):\n{text}\n"
            f"### Training curves\n\n![training curves]({rel})\n\nHeld-out losses during training:\n\n{samples}\n")


EXTRA_REPORTS = ("layouts.md", "long_audio.md", "overhead_spread.md", "fuzz.md", "soak.md", "bomb.md", "raw_vllm.md")  # what a folder given with --extra may hold


def extra_section(folder: str) -> str:
    """A separately run benchmark's report, its title one level down, with where it came from."""
    rel = os.path.relpath(folder, HERE)
    out = []
    for name in EXTRA_REPORTS:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            title, body = open(path).read().split("\n", 1)
            out.append(f"#{title}\n\nRun on its own (not part of the run above); files: `benchmarks/{rel}/`.\n{body}")
    if not out:
        raise SystemExit(f"{folder}: none of {', '.join(EXTRA_REPORTS)}")
    return "\n".join(out)


def publish(run: str, compare_with: str | None = None, extras: list[str] | None = None) -> str:
    rel = os.path.relpath(run, HERE)
    summary = open(os.path.join(run, "summary.md")).read().split("\n", 1)[1]
    model = json.load(open(os.path.join(run, "quality.json")))["models"]["aura"]
    parts = [
        "# Benchmark results\n",
        f"The latest published run of `make bench`; every figure below is read from the result files committed in "
        f"`benchmarks/{rel}/` (raw per-request records are in its `*.json`).\n",
        TINY_NOTE if "tiny" in model else "",
        summary,
        *(extra_section(folder) for folder in extras or []),
        model_section(model, run),
    ]
    if compare_with:
        rel_b = os.path.relpath(compare_with, HERE)
        parts.append("\n## Reproducibility: the same workload, run again\n\n"
                     f"An independent run of the same `make bench` workload (`benchmarks/{rel_b}/`), ratios side by side:\n\n"
                     + compare(run, compare_with)
                     + "\nThese are ratios of medians over 16–32 requests on 2 shared cores with a model whose prefill takes "
                       "~25 ms, so a few milliseconds of scheduling noise move them. A change beyond ±10 % says the workload "
                       "is too small for a decision; raise `--requests` (loadtest, overhead) for one.\n")
    text = "\n".join(p for p in parts if p)
    with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
        f.write(text)
    return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--compare-with")
    p.add_argument("--extra", action="append", default=[], help="a folder of a benchmark run on its own (repeatable)")
    a = p.parse_args(argv)
    publish(a.run, a.compare_with, a.extra)
    print(os.path.join(HERE, "RESULTS.md"))


if __name__ == "__main__":
    main()
