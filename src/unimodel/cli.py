"""The `unimodel` command."""

from __future__ import annotations

import gc
import logging
import sys

import click

from . import __version__
from .config import ConfigError, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unimodel")
def cli() -> None:
    """unimodel: one API for every model.

    Serves the Bytez /models/v2 protocol and an OpenAI-compatible surface, and forwards closed-model calls
    to OpenAI and Anthropic with the caller's provider key.
    """


@cli.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file (or $UNIMODEL_CONFIG)."
)
@click.option("--host", help="Address to bind (default from config: 127.0.0.1).")
@click.option("--port", type=int, help="Port to bind (default from config: 8080).")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Start the server."""
    import uvicorn

    from .gateway import create_app

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["server__host"] = host
    if port is not None:
        overrides["server__port"] = port
    try:
        settings = load_settings(config_path, **overrides)
    except ConfigError as exc:
        click.echo(f"unimodel: {exc}", err=True)
        sys.exit(2)
    level = settings.server.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    app = create_app(settings)
    # Everything allocated so far lives for the whole process: keep the collector from rescanning it, and let
    # the young generation grow before a collection, which keeps request tail latency down.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    click.echo(f"unimodel {__version__} listening on http://{settings.server.host}:{settings.server.port}", err=True)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level.lower(),
        access_log=settings.server.access_log,
        loop="auto",
        http="auto",
    )


@cli.command("check-config")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file (or $UNIMODEL_CONFIG)."
)
def check_config(config_path: str | None) -> None:
    """Validate a config file and print the settings it gives (secrets masked)."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        click.echo(f"unimodel: {exc}", err=True)
        sys.exit(2)
    click.echo(settings.model_dump_json(indent=2))


def main() -> None:
    cli()
