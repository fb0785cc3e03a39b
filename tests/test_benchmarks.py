"""Benchmarks: their arithmetic, and a small real run of each against the shared test server."""

import json
import os

import pytest

from benchmarks import loadtest, overhead, quality
from benchmarks.audioset import Clip
from benchmarks.stats import percentile


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert percentile([], 50) is None
    assert percentile(list(range(101)), 90) == 90


def test_wer_normalises_case_and_punctuation():
    assert quality.wer(["Hello, World!"], ["hello world"]) == 0.0
    assert quality.wer(["turn on the lights"], ["turn off the lights"]) == 0.25
    assert quality.wer(["two words"], [""]) == 1.0


def test_token_f1():
    assert quality.token_f1("The cat sat.", "the cat sat") == 1.0
    assert quality.token_f1("a b", "c d") == 0.0
    assert quality.token_f1("a b c d", "a b") == pytest.approx(2 / 3)


def test_jobs_interleave_modes_over_the_same_clips():
    clips = [Clip(f"c{i}.wav", b"") for i in range(3)]
    work = loadtest.jobs(clips, ["aura", "cascade"], 6)
    assert [m for m, _ in work] == ["aura", "cascade"] * 3
    assert [c.name for _, c in work[0::2]] == [c.name for _, c in work[1::2]]


@pytest.mark.vllm
def test_small_runs_against_a_live_server(server, model, real_speech, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio": r["path"], "text": r["text"]}) + "\n" for r in real_speech[10:13]))
    out = str(tmp_path / "out")
    common = ["--url", server.url, "--no-progress", "--max-tokens", "4"]

    lt = loadtest.run(loadtest.parser().parse_args(common + ["--audio", str(manifest), "--concurrency", "1,2", "--requests", "4",
                                                             "--ignore-eos", "--warmup", "0", "--out", out]))
    for level in lt["levels"]:
        for mode in ("aura", "cascade"):
            s = level["modes"][mode]
            assert s["ok"] == s["requests"] >= 2 and s["ttft_s_p50"] > 0 and s["server_ms_mean"]["total"] > 0
            assert all(r["completion_tokens"] == 4 for r in level["records"])  # ignore_eos: fixed length
        assert level["ratios"]["ttft_p50"] > 0
    for name in ("loadtest.json", "loadtest.md", "latency_vs_concurrency.png", "stage_breakdown.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name

    ov = overhead.run(overhead.parser().parse_args(common + ["--model", model, "--audio", str(manifest), "--limit", "2",
                                                             "--concurrency", "1", "--requests", "4", "--out", out]))
    (level,) = ov["levels"]
    assert abs(level["prompt_token_gap_mean"]) <= 1, "text prompts were not calibrated to the audio prompts' length"
    assert level["ttft_ratio_p50"] > 0 and ov["front_end_ms_per_audio_second"] > 0

    ql = quality.run(quality.parser().parse_args(["--url", server.url, "--no-progress", "--model", model, "--manifest", str(manifest),
                                                  "--limit", "2", "--max-tokens", "4", "--out", out]))
    assert set(ql["paths"]) == {"aura", "cascade"}
    assert all(0 <= p["wer"] and 0 <= p["agreement_f1"] <= 1 for p in ql["paths"].values())
    assert os.path.exists(os.path.join(out, "quality.md"))


def test_layout_memory_counts_every_process_of_a_tree():
    import subprocess
    import sys

    from benchmarks.layouts import memory

    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(200 << 20); time.sleep(30)"])
    try:
        import time

        time.sleep(2)  # the child has touched its 200 MiB
        alone, tree = memory(child.pid), memory(os.getpid())
        assert tree["processes"] >= 2 and alone["rss_mib"] > 200 and tree["rss_mib"] > alone["rss_mib"]
        assert 0 < tree["pss_mib"] <= tree["rss_mib"]
    finally:
        child.kill()


def test_a_long_file_joins_clips_with_pauses_in_a_seeded_order(real_speech, tmp_path):
    import io

    import soundfile as sf

    from adapters.data.manifest import write_manifest
    from benchmarks.long_audio import GAP_S, long_file

    manifest = str(tmp_path / "real.jsonl")
    write_manifest(manifest, [{"audio": r["path"], "text": r["text"]} for r in real_speech])
    data, references, seconds = long_file(manifest, minutes=0.5, seed=1)
    wave, rate = sf.read(io.BytesIO(data))
    assert seconds >= 30 and wave.shape[0] / rate == pytest.approx(seconds, abs=0.01)
    assert references == long_file(manifest, minutes=0.5, seed=1)[1] and len(references) >= 30 / (10 + GAP_S)


def test_publish_adds_reports_run_on_their_own(tmp_path):
    from benchmarks.publish import extra_section

    (tmp_path / "layouts.md").write_text("# Engine layouts\n\n| a | b |\n")
    text = extra_section(str(tmp_path))
    assert text.startswith("## Engine layouts") and "Run on its own" in text and "| a | b |" in text
    with pytest.raises(SystemExit):
        extra_section(str(tmp_path / "nothing"))


def test_soak_rss_slope_reads_the_second_half():
    from benchmarks.soak import slope_mib_per_min

    warm_up = [{"t_s": t, "rss_mib": 1000.0 + 50 * t} for t in range(0, 60, 5)]  # start-up growth, ignored
    steady = [{"t_s": t, "rss_mib": 4000.0 + t / 60 * 2} for t in range(60, 180, 5)]  # 2 MiB a minute
    assert slope_mib_per_min(warm_up + steady) == pytest.approx(2.0, abs=0.01)
    assert slope_mib_per_min(steady[:4]) is None


def test_the_engines_serve_flags_give_vllm_the_same_engine_args(tiny):
    # benchmarks.raw_vllm starts `vllm serve` with these flags; parsed by vLLM's own CLI parser they
    # must build the engine the gateway builds from its keyword arguments.
    from vllm import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from adapters.runtime.bundle import Bundle
    from service.engines.inprocess import InProcessEngine

    bundle = Bundle.load(tiny["bundle"])
    engine = InProcessEngine(bundle.base_llm_dir, name="m", max_model_len=384, gpu_memory_utilization=0.15, log_stats=False,
                             adapters={"m": (bundle.lora_dir, bundle.lora_rank)})
    parsed = AsyncEngineArgs.from_cli_args(AsyncEngineArgs.add_cli_args(FlexibleArgumentParser()).parse_args(engine.serve_args()))
    for key, value in engine._args.items():  # (vLLM's parser and its dataclass disagree on defaults we leave alone)
        got = getattr(parsed, key)
        assert (got[0] if key == "served_model_name" else got) == value, key
    assert parsed.enable_lora and parsed.max_model_len == 384 and parsed.disable_log_stats


@pytest.mark.vllm
def test_raw_vllm_compares_the_gateway_with_vllm_serve_of_its_engine(server, tiny, real_speech, tmp_path):
    from conftest import MAX_MODEL_LEN

    from benchmarks import raw_vllm
    from service.settings import Settings

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio": r["path"], "text": r["text"]}) + "\n" for r in real_speech[10:13]))
    settings = Settings(bundle=tiny["bundle"], max_model_len=MAX_MODEL_LEN, gpu_memory_utilization=0.15)
    args = raw_vllm.parser().parse_args(["--url", server.url, "--rounds", "1", "--concurrency", "1,2", "--requests", "4", "--max-tokens", "4"])
    result = raw_vllm.run(server.url, settings, str(manifest), args)
    (round_,) = result["rounds"]
    for side in ("gateway", "vllm"):
        for c in (1, 2):
            assert round_[side][c]["errors"] == 0 and round_[side][c]["requests_per_s"] > 0
    assert round_["gateway"][1]["prompt_tokens_mean"] == round_["vllm"][1]["prompt_tokens_mean"]  # the same prompts, templated alike
    assert "| 1 |" in raw_vllm.markdown(result)
