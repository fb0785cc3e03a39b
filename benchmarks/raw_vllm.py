"""What the gateway costs: its throughput on text prompts ÷ a plain `vllm serve` of the same engine.

    python -m benchmarks.raw_vllm --url http://127.0.0.1:8011 [--bundle DIR] [--out DIR]

The gateway at --url must serve --bundle (default: the default model) with default engine settings, on
the one-engine layout, with `--allow-ignore-eos`. This starts `vllm serve` with that engine's exact settings (the flags come from
the gateway's own engine, `InProcessEngine.serve_args`), then sends both the same text chat requests
(each clip's reference transcript, fixed-length completions), closed loop at each concurrency. Rounds
alternate gateway and vLLM so that a drift of the machine's speed shows as spread, not as a difference.
`make bench` runs it after its suite, on the server it started.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from benchmarks import loadtest
from benchmarks.real_speech import fetch
from benchmarks.report import command_line, machine, machine_line, spread, write_report
from benchmarks.server_process import VLLM_SERVE, ServerProcess
from service.settings import Settings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def engine_flags(settings: Settings) -> tuple[str, list[str]]:
    """(model name, `vllm serve` flags) of the engine `aura serve` runs with these settings."""
    from adapters.runtime.bundle import Bundle
    from adapters.runtime.prompt import chat_template
    from service.state import ServerState

    state = ServerState(settings)
    bundle = Bundle.load(state.bundle_path)
    engine = state.planned_engine(bundle)
    if engine is None:
        raise SystemExit("the gateway would run two engines for this bundle (see `aura serve`'s log for why): "
                         "this comparison needs the one-engine layout")
    # The gateway renders chats with the bundle's template (or a default when the tokenizer has none):
    # vLLM gets the same one, so both send the engine the same prompt tokens.
    with tempfile.NamedTemporaryFile("w", prefix="chat-template-", suffix=".jinja", delete=False) as f:
        f.write(chat_template(bundle.tokenizer, bundle.cfg.chat_template))
    return state.model_name, [*engine.serve_args(), "--chat-template", f.name]


def throughput(url: str, model: str, audio: str, args) -> dict[int, dict]:
    lt = loadtest.run(loadtest.parser().parse_args([
        "--url", url, "--api", "chat", "--model", model, "--modes", "text", "--no-progress", "--audio", audio, "--limit", "16",
        "--concurrency", ",".join(map(str, args.concurrency)), "--requests", str(args.requests),
        "--max-tokens", str(args.max_tokens), "--ignore-eos"]))
    out = {}
    for level in lt["levels"]:
        m = level["modes"]["text"]
        out[level["concurrency"]] = {"requests_per_s": m["requests_per_s"], "ttft_p50_ms": m["ttft_s_p50"] and round(1000 * m["ttft_s_p50"], 1),
                                     "errors": m["errors"], "error_kinds": m["error_kinds"],
                                     "prompt_tokens_mean": m["prompt_tokens_mean"]}
    return out


def run(url: str, settings: Settings, audio: str, args) -> dict:
    """`settings`: the gateway's own (its bundle, engine limits), from which vLLM's flags are derived."""
    model, flags = engine_flags(settings)
    vllm = ServerProcess([*VLLM_SERVE, *flags], "/health", "vllm-serve", log_path=os.path.join(ROOT, "artifacts", "raw-vllm.log"))
    try:
        vllm.wait_ready(timeout=900)
        throughput(vllm.url, model, audio, args)  # warm-up: vLLM's first requests pay one-time costs
        rounds = []
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}: gateway, then vllm serve ...", flush=True)
            rounds.append({"gateway": throughput(url, model, audio, args), "vllm": throughput(vllm.url, model, audio, args)})
    finally:
        vllm.stop()
    return {"benchmark": "raw_vllm", "command": command_line(), "machine": machine(), "model": model, "vllm_flags": flags,
            "concurrency": args.concurrency, "requests": args.requests, "max_tokens": args.max_tokens, "rounds": rounds}


def markdown(result: dict) -> str:
    rounds = result["rounds"]
    lines = [f"# Gateway ÷ plain `vllm serve` ({len(rounds)} rounds; median, min–max)\n",
             f"Machine: {machine_line(result['machine'])}. Command: `{result['command']}`. Text chat requests (reference "
             f"transcripts), {result['requests']} per level, {result['max_tokens']} tokens each, closed loop. Both servers run "
             f"the same engine: `vllm serve {' '.join(result['vllm_flags'])}`.\n",
             "| concurrency | gateway req/s | vllm serve req/s | gateway ÷ vllm, throughput | TTFT p50 ms, gateway | vllm serve |",
             "|---|---|---|---|---|---|"]
    for c in result["concurrency"]:
        g = [r["gateway"][c]["requests_per_s"] for r in rounds]
        v = [r["vllm"][c]["requests_per_s"] for r in rounds]
        lines.append(f"| {c} | {spread(g)} | {spread(v)} | {spread([x / y for x, y in zip(g, v, strict=True)])}× | "
                     f"{spread([r['gateway'][c]['ttft_p50_ms'] for r in rounds])} | {spread([r['vllm'][c]['ttft_p50_ms'] for r in rounds])} |")
    errors = sum(r[s][c]["errors"] for r in rounds for s in ("gateway", "vllm") for c in result["concurrency"])
    tokens = {s: statistics.fmean(r[s][c]["prompt_tokens_mean"] for r in rounds for c in result["concurrency"]) for s in ("gateway", "vllm")}
    lines.append(f"\nErrors: {errors}. Mean prompt tokens: gateway {tokens['gateway']:.1f}, vllm serve {tokens['vllm']:.1f} "
                 "(equal: both applied the same chat template). The ratio is per round (the two measured back to back).")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the running gateway")
    p.add_argument("--bundle", help="the bundle it serves (default: the default model)")
    p.add_argument("--audio", help="manifest whose reference transcripts are the prompts (default: the Asterisk real-speech set)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of both servers, alternating")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16], help="levels")
    p.add_argument("--requests", type=int, default=32, help="requests per level and server")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--out", help="results folder (default: benchmarks/results/<date-time>-raw-vllm)")
    return p


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    audio = a.audio or fetch(os.path.join(ROOT, "artifacts", "real-speech"))
    from adapters.cli import default_bundle

    result = run(a.url, Settings(bundle=a.bundle or default_bundle()), audio, a)
    write_report(a.out or os.path.join(HERE, "results", time.strftime("%Y-%m-%d_%H%M%S") + "-raw-vllm"), "raw_vllm", result, markdown(result))


if __name__ == "__main__":
    main()
