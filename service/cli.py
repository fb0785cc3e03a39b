"""The `aura` command: `serve` here, the adapter commands (distill, export, make-tiny, synth) from adapters.cli.

`aura serve` flags are generated from Settings, so every setting is a flag (--max-audio-seconds)
and an environment variable (AURA_MAX_AUDIO_SECONDS), documented once.
"""

from __future__ import annotations

import argparse
import logging
import typing

from adapters import cli as adapters_cli
from service.settings import Settings


def _flag_kwargs(field) -> dict:
    ann = field.annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Annotated:
        ann, args = args[0], typing.get_args(args[0])
    if ann is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(ann) is typing.Literal:
        return {"choices": list(args)}
    if typing.get_origin(ann) is list:
        return {"metavar": "A,B"}
    base = next((a for a in args if a is not type(None)), ann) if args else ann
    return {"type": base} if base in (int, float, str) else {}


def add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gateway (uvicorn): AuRA and cascade behind an OpenAI-compatible API",
        description="Serve an AuRA bundle. Every flag is also an environment variable AURA_<NAME>.",
    )
    for name, field in Settings.model_fields.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS,
                       help=f"{field.description or name} (default: {field.get_default(call_default_factory=True)!r})",
                       **_flag_kwargs(field))
    p.set_defaults(func=run_serve)


def settings_from_args(a: argparse.Namespace) -> Settings:
    """Flags over AURA_* variables over defaults; no bundle means the default model's."""
    settings = Settings(**{k: v for k, v in vars(a).items() if k in Settings.model_fields})
    if settings.bundle is None:  # the committed pretrained adapter, merged into a bundle on first use
        settings = settings.model_copy(update={"bundle": adapters_cli.default_bundle()})
    return settings


def run_serve(a) -> None:
    import uvicorn

    from service.app import create_app
    from service.logs import setup_logging

    settings = settings_from_args(a)
    setup_logging(settings.log_level, settings.log_json)
    if warning := settings.exposure_warning():
        logging.getLogger("aura.server").warning(warning)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
                timeout_keep_alive=settings.keep_alive_seconds, timeout_graceful_shutdown=10)


def main(argv: list[str] | None = None) -> None:
    adapters_cli.main(argv, extra_commands=[add_serve])


if __name__ == "__main__":
    main()
