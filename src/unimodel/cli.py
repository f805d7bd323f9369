"""The `unimodel` command."""

from __future__ import annotations

import sys

import click

from . import __version__
from .config import ConfigError, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unimodel")
def cli() -> None:
    """unimodel: one API for every model.

    Serves the Bytez /models/v2 protocol and an OpenAI-compatible surface: closed models are forwarded to
    their providers, open models run on this machine. `keys` and `usage` manage gateway keys and the ledger.
    """


@cli.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file (or $UNIMODEL_CONFIG)."
)
@click.option("--host", help="Address to bind (default from config: 127.0.0.1).")
@click.option("--port", type=int, help="Port to bind (default from config: 8080).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Gateway processes (default from config: 1). More than one needs [limits] redis_url.",
)
def serve(config_path: str | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the server."""
    from .gateway.logs import configure_logging
    from .gateway.platform import StartupRefused
    from .server import prepare, run
    from .store import StoreUnavailable

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["server__host"] = host
    if port is not None:
        overrides["server__port"] = port
    if workers is not None:
        overrides["server__workers"] = workers
    try:
        settings = load_settings(config_path, **overrides)
    except ConfigError as exc:
        click.echo(f"unimodel: {exc}", err=True)
        sys.exit(2)
    configure_logging(settings.server.log_level, settings.server.log_format)
    try:
        prepare(settings)
    except StartupRefused as exc:
        click.echo(f"unimodel: refusing to start: {exc}", err=True)
        sys.exit(2)
    except StoreUnavailable as exc:
        click.echo(f"unimodel: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"unimodel {__version__} listening on http://{settings.server.host}:{settings.server.port}"
        + (f" ({settings.server.workers} gateway processes)" if settings.server.workers > 1 else ""),
        err=True,
    )
    try:
        run(settings, config_path)
    except StartupRefused as exc:
        click.echo(f"unimodel: refusing to start: {exc}", err=True)
        sys.exit(2)


@cli.command("runtime-process", hidden=True)
@click.option("--port", type=int, required=True)
def runtime_process(port: int) -> None:
    """The open-model runtime process of `serve --workers N` (started by serve, not by hand)."""
    from .server import run_runtime_process

    run_runtime_process(port)


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


from .cli_store import keys, usage  # noqa: E402 - registered here, after the group they join

cli.add_command(keys)
cli.add_command(usage)
from .cli_hub import register as register_hub  # noqa: E402 - as above

register_hub(cli)


def main() -> None:
    cli()
