"""What the server loads at start: the bundle, the engines, the ASR, and the pipeline over them."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import torch
from anyio import to_thread

from adapters import SAMPLE_RATE
from adapters.runtime.bundle import Bundle
from adapters.runtime.config import AuraConfig
from adapters.runtime.errors import BundleError
from service.asr import ASR
from service.engines.base import Engine
from service.engines.inprocess import InProcessEngine
from service.engines.remote import RemoteEngine
from service.limits import ConcurrencyLimiter
from service.pipeline import AuraModel, Pipeline
from service.settings import Settings

log = logging.getLogger("aura.server")

CASCADE_SUFFIX = "-cascade"


class ServerState:
    def __init__(self, settings: Settings):
        self.settings = settings
        # The front end's torch work is small; on a CPU server its threads would compete with vLLM's for
        # the same cores (the audio-vs-text overhead moved from 1.1x to 3.2x between runs with the default).
        torch.set_num_threads(settings.frontend_threads)
        self.limiter = ConcurrencyLimiter(settings.max_concurrency, settings.max_queue, settings.queue_timeout_s)
        self.created = int(time.time())
        self.bundle: Bundle | None = None
        self.pipeline: Pipeline | None = None
        self.engines: list[Engine] = []
        self.ready = False
        self.layout: str | None = None  # "single" or "separate" once started (Settings.engine_layout)
        self.failed = False  # the start raised: the log says why, and the server is shutting down
        if settings.bundle is None:  # `aura serve` fills it in with the default model's bundle
            raise BundleError("no bundle: pass --bundle / AURA_BUNDLE (`aura serve` alone builds the default model's)")
        self.bundle_path = settings.bundle
        if not os.path.isdir(self.bundle_path):
            raise BundleError(f"bundle {self.bundle_path!r} not found; build the tiny one with `aura make-tiny` "
                              "or point --bundle / AURA_BUNDLE at one written by `aura export`")
        cfg = AuraConfig.load(self.bundle_path)
        self.model_name = settings.model_name or cfg.name or os.path.basename(os.path.normpath(self.bundle_path))

    @property
    def cascade_model_name(self) -> str:
        return self.model_name + CASCADE_SUFFIX

    def _engine(self, model_dir: str, remote_url: str | None, name: str, *, prompt_embeds: bool, log_stats: bool,
                adapters: dict[str, tuple[str, int]] | None = None) -> Engine:
        s = self.settings
        if remote_url:
            return RemoteEngine(remote_url, name=name, max_model_len=s.max_model_len, timeout_s=s.remote_timeout_s)
        return InProcessEngine(model_dir, name=name, max_model_len=s.max_model_len, gpu_memory_utilization=s.gpu_memory_utilization,
                               dtype=s.dtype, enforce_eager=s.enforce_eager, prompt_embeds=prompt_embeds, log_stats=log_stats,
                               adapters=adapters)

    def _single_engine_base(self, bundle: Bundle, cascade_llm: str | None) -> str | None:
        """The base LLM one engine would serve everything from, with the AuRA LoRA applied per
        request; None (with the reason logged) when this server needs the two-engine layout."""
        s = self.settings
        if s.engine_layout != "single" or s.engine != "inprocess" or s.cascade_remote_url:
            return None
        base = cascade_llm or s.cascade_llm or bundle.base_llm_dir
        why = ("the bundle carries no un-merged LoRA (exported before bundles did: export it again)" if bundle.lora_dir is None
               else f"its base LLM is not at {base!r}" if not (base and os.path.isdir(base)) else None)
        if why:
            log.warning("two engines (the merged AuRA LLM and the base LLM): %s", why)
            return None
        return base

    def _single_engine(self, bundle: Bundle, base: str, more_models: dict[str, AuraModel]) -> InProcessEngine:
        """The one engine of the base LLM, with AuRA's LoRA (named as the model) and every --adapters one."""
        adapters = {self.model_name: (bundle.lora_dir, bundle.lora_rank)}
        adapters |= {name: (m.bundle.lora_dir, m.bundle.lora_rank) for name, m in more_models.items()}
        return self._engine(base, None, self.model_name, prompt_embeds=True, log_stats=True, adapters=adapters)

    def planned_engine(self, bundle: Bundle) -> InProcessEngine | None:
        """The engine start() runs on the single layout, not started (benchmarks.raw_vllm starts a plain
        `vllm serve` with its settings); None when this server would run two engines."""
        base = self._single_engine_base(bundle, self._cascade_parts(bundle)[1])
        return self._single_engine(bundle, base, {}) if base else None

    def _cascade_parts(self, bundle: Bundle) -> tuple[str | None, str | None]:
        s = self.settings
        asr = s.cascade_asr or bundle.cfg.asr_model
        llm = s.cascade_llm or bundle.base_llm_dir
        if s.cascade == "off":
            return None, None
        missing = [what for what, path in (("ASR model", asr), ("base LLM", llm)) if not path or not os.path.isdir(path)]
        if s.cascade_remote_url:
            missing = [m for m in missing if m != "base LLM"]
        if missing:
            if s.cascade == "on":
                raise BundleError(f"cascade requested but missing: {', '.join(missing)} (asr={asr!r}, llm={llm!r})")
            log.warning("cascade disabled", extra={"missing": missing})
            return None, None
        return asr, llm

    def _more_models(self, base: str | None) -> dict[str, AuraModel]:
        """The bundles of --adapters, checked: each must be a LoRA of the base LLM the one engine serves."""
        out = {}
        for name, path in self.settings.more_adapters().items():
            if name in (self.model_name, self.cascade_model_name) or name in out:
                raise BundleError(f"adapters: the model name {name!r} is taken")
            if base is None:
                raise BundleError("--adapters needs one engine of the base LLM (--engine-layout single, an in-process engine, "
                                  "and a bundle that carries its LoRA); see the log for why this server runs two")
            try:
                bundle = Bundle.load(path)
            except (BundleError, OSError) as e:
                raise BundleError(f"adapters: {name}={path}: {e}") from None
            if bundle.lora_dir is None:
                raise BundleError(f"adapters: {name}={path} carries no un-merged LoRA (lora/); export it again")
            if os.path.realpath(bundle.base_llm_dir) != os.path.realpath(base):
                raise BundleError(f"adapters: {name}={path} adapts {bundle.base_llm_dir}, not the base LLM this engine serves ({base})")
            out[name] = AuraModel(bundle, name)
        return out

    async def start(self) -> None:
        s = self.settings
        if s.engine == "remote" and not s.remote_url:
            raise BundleError("engine=remote needs --remote-url (the `vllm serve --enable-prompt-embeds` base URL)")
        bundle = await to_thread.run_sync(Bundle.load, self.bundle_path)
        # The first pass builds the mel filter bank and warms torch's kernels (~100 ms): pay it now,
        # not in the first user's latency.
        await to_thread.run_sync(bundle.embed_audio, np.zeros(SAMPLE_RATE, np.float32))
        self.bundle = bundle
        asr_dir, cascade_llm = self._cascade_parts(bundle)
        cascade_engine = asr = None
        if asr_dir:
            asr = await to_thread.run_sync(lambda: ASR(asr_dir, compute_type=s.asr_compute_type, cpu_threads=s.asr_threads, beam_size=s.asr_beam_size))
        base = self._single_engine_base(bundle, cascade_llm)
        more_models = await to_thread.run_sync(self._more_models, base)
        aura_adapter = None
        if base:  # one engine: AuRA is its LoRA, applied per request; the cascade and text run on the base model
            aura_adapter = self.model_name
            engine = self._single_engine(bundle, base, more_models)
            await engine.start()
            self.engines.append(engine)
            cascade_engine = engine if asr else None
        else:
            if asr:
                # vLLM's Prometheus metrics are process-wide: only the AuRA engine reports them.
                cascade_engine = self._engine(cascade_llm, s.cascade_remote_url, self.cascade_model_name, prompt_embeds=False, log_stats=False)
                await cascade_engine.start()
                self.engines.append(cascade_engine)
            engine = self._engine(bundle.llm_dir, s.remote_url if s.engine == "remote" else None, self.model_name,
                                  prompt_embeds=True, log_stats=True)
            await engine.start()
            self.engines.append(engine)
        self.layout = "single" if base else "separate"
        self.pipeline = Pipeline(bundle, engine, aura_adapter=aura_adapter, more_models=more_models, cascade_engine=cascade_engine, asr=asr,
                                 max_audio_seconds=s.max_audio_seconds, max_request_audio_seconds=s.max_request_audio_seconds,
                                 max_transcription_seconds=s.max_transcription_seconds,
                                 default_max_tokens=s.default_max_tokens)
        self.ready = True
        log.info("ready", extra={"model": self.model_name, "cascade": cascade_engine is not None, "engine": s.engine,
                                 "layout": self.layout})

    async def stop(self) -> None:
        self.ready = False
        for engine in reversed(self.engines):
            await engine.stop()
        self.engines.clear()

    def dead_engines(self) -> list[str]:
        """Names of the engines whose process has died (they never recover; see GET /health)."""
        return [e.name for e in self.engines if not e.alive()]

    def models(self) -> dict[str, str]:
        """Public model name → path."""
        out = {self.model_name: "aura"}
        if self.pipeline is not None:
            out |= {name: "aura" for name in self.pipeline.models if name is not None}
        if self.pipeline is not None and self.pipeline.has_cascade:
            out[self.cascade_model_name] = "cascade"
        return out
