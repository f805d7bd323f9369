"""`unimodel pull` and `unimodel models`: get open models from the Hugging Face Hub, and see what can run.

    unimodel pull Qwen/Qwen2.5-0.5B-Instruct [--revision R] [--file F] [--config FILE]
    unimodel models [--json]        # bundled, configured and pulled models: id, task, engine, size, where
    unimodel models rm ID           # delete a pulled model's files

`pull` asks the Hub, decides (runtime/hub/plan.py), downloads into the Hugging Face cache with a progress bar
on a terminal (plain lines every few seconds otherwise), and ends with what it decided. The settings are the
server's (`[hub]`, then HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE, HF_HUB_OFFLINE). Errors are one line on stderr and
exit status 1 (2 for a bad config); an interrupted pull exits 130 and keeps the files it finished.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from .config import ConfigError, Settings, load_settings
from .protocol.errors import UnimodelError
from .runtime.bundled import bundled_models
from .runtime.hub import HubClient, HubSettings, LocalCatalog, LocalModel, Plan, Pull, format_bytes

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file (or $UNIMODEL_CONFIG)."
)
PLAIN_INTERVAL_S = 5.0  # progress lines when stderr is not a terminal
_SHOWN_FILES = 8


def register(cli: click.Group) -> None:
    """Add `pull` and `models` to the `unimodel` command."""
    cli.add_command(pull)
    cli.add_command(models)


@click.command()
@click.argument("model_id")
@click.option("--revision", help="A branch, tag or commit of the repo (default: main).")
@click.option("--file", "file_name", help="A GGUF repo's file to pull (default: the first of [hub] gguf_preference).")
@config_option
def pull(model_id: str, revision: str | None, file_name: str | None, config_path: str | None) -> None:
    """Pull a model from the Hugging Face Hub into the local cache, so the server can run it."""
    logging.getLogger("unimodel").addHandler(logging.NullHandler())  # failures are reported once, below
    hub = HubSettings.resolve(_settings(config_path).hub)
    catalog = LocalCatalog(hub.cache_dir)
    if hub.offline:
        local = catalog.get(model_id, revision=revision, file=file_name)
        if local is None:
            from .runtime.hub.errors import offline

            _fail_error(offline(model_id, hub))
        click.echo(f"{local.id} is already pulled; the Hub is off ({hub.offline_source}), so it was not checked.")
        _summary(local, None)
        return
    try:
        plan = HubClient(hub).plan(model_id, revision=revision, file=file_name)
    except UnimodelError as exc:
        _fail_error(exc)
    except KeyboardInterrupt:
        _fail("interrupted.", 130)
    click.echo(
        f"Pulling {plan.repo_id} ({plan.revision} @ {plan.commit[:12]}): {_files(len(plan.files))}, "
        f"{format_bytes(plan.total_bytes)} → {hub.cache_dir}",
        err=True,
    )
    job = Pull(plan, hub, catalog).start()
    try:
        _show_progress(job)
        local = job.result()
    except KeyboardInterrupt:
        _fail("interrupted; the files that finished are kept, and the same command fetches the rest.", 130)
    except UnimodelError as exc:
        _fail_error(exc)
    _summary(local, plan)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@config_option
@click.pass_context
def models(ctx: click.Context, as_json: bool, config_path: str | None) -> None:
    """List the open models this server can run: bundled, configured and pulled (`models rm ID` removes one)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = model_rows(_settings(config_path))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No open models: configure [[models]] or run `unimodel pull ID`.")
        return
    table = [["ID", "TASK", "ENGINE", "SIZE", "SOURCE", "WHERE"]]
    for row in rows:
        size = format_bytes(row["size_bytes"]) if row["size_bytes"] is not None else "-"
        table.append([row["id"], row["task"], row["engine"], size, row["source"], row["path"] or "-"])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1])


@models.command("rm")
@click.argument("model_id")
@config_option
def remove(model_id: str, config_path: str | None) -> None:
    """Delete a pulled model's files from the cache (other repos' files stay)."""
    logging.getLogger("unimodel").addHandler(logging.NullHandler())
    catalog = LocalCatalog(HubSettings.resolve(_settings(config_path).hub).cache_dir)
    try:
        freed = catalog.remove(model_id)
    except UnimodelError as exc:
        _fail_error(exc)
    click.echo(f"Removed {model_id} ({format_bytes(freed)} freed).")


def model_rows(settings: Settings) -> list[dict[str, Any]]:
    """What `models` lists: configured models first, then the bundled and pulled ones the config does not name."""
    catalog = LocalCatalog(HubSettings.resolve(settings.hub).cache_dir)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for m in settings.models:
        seen.add(m.id.lower())
        if m.path is not None or m.engine == "command":
            path = Path(m.path).expanduser() if m.path else None
            rows.append(_row(m.id, m.task, m.engine, _size(path), "configured", str(path) if path else None))
            continue
        local = catalog.get(m.id, revision=m.revision, file=m.file)
        if local is None:
            rows.append(_row(m.id, m.task, m.engine, None, "configured, not pulled yet", None))
        else:
            task = m.task if "task" in m.model_fields_set else local.task
            engine = m.engine if "engine" in m.model_fields_set else local.engine
            rows.append(_local_row(local, "configured, pulled", task=task, engine=engine))
    if settings.runtime.default_models:
        for b in bundled_models():
            if b.id.lower() not in seen:
                seen.add(b.id.lower())
                rows.append(_row(b.id, b.task, b.engine, _size(b.path), "bundled", str(b.path)))
    for local in catalog.list():
        if local.id.lower() not in seen:
            rows.append(_local_row(local, "pulled"))
    return rows


def _row(
    model_id: str, task: str, engine: str, size: int | None, source: str, path: str | None, **extra: Any
) -> dict[str, Any]:
    return {"id": model_id, "task": task, "engine": engine, "size_bytes": size, "source": source, "path": path} | extra


def _local_row(local: LocalModel, source: str, *, task: str | None = None, engine: str | None = None) -> dict[str, Any]:
    return _row(
        local.id,
        task or local.task,
        engine or local.engine,
        local.size_bytes,
        source,
        str(local.path),
        revision=local.revision,
        commit=local.commit,
    )


def _size(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- output -------------------------------------------------------------------------------------------------


def _show_progress(job: Pull) -> None:
    if sys.stderr.isatty():
        _progress_bar(job)
    else:
        _progress_lines(job)


def _progress_bar(job: Pull) -> None:
    from tqdm import tqdm  # type: ignore[import-untyped]  # huggingface_hub's dependency: here when pulls work

    first = job.progress()
    with tqdm(
        total=first.bytes_total,
        initial=first.bytes_done,
        unit="B",
        unit_scale=True,
        unit_divisor=1000,
        desc=job.plan.repo_id.rsplit("/", 1)[-1][:30],
        file=sys.stderr,
        **_width(),
    ) as bar:
        shown = first.bytes_done
        while True:
            done = job.done()
            now = job.progress()
            bar.set_postfix_str(f"files {now.files_done}/{now.files_total}", refresh=False)
            bar.update(now.bytes_done - shown)
            shown = now.bytes_done
            if done:
                return
            time.sleep(0.1)


def _width() -> dict[str, Any]:
    """tqdm's size: the terminal's, followed as it changes; 80×24 when it reports none (tqdm draws nothing there)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        size = os.terminal_size((0, 0))
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": size.columns or 80, "nrows": size.lines or 24}


def _progress_lines(job: Pull) -> None:
    last = 0.0
    while True:
        done = job.done()
        if done or time.monotonic() - last >= PLAIN_INTERVAL_S:
            last = time.monotonic()
            p = job.progress()
            share = 100 * p.bytes_done / p.bytes_total if p.bytes_total else 100.0
            eta = f", about {_duration(p.eta_s)} left" if p.eta_s is not None else ""
            click.echo(
                f"  {format_bytes(p.bytes_done)} / {format_bytes(p.bytes_total)} ({share:.0f}%), "
                f"{format_bytes(p.rate_bps)}/s{eta}, {p.files_done}/{_files(p.files_total)}",
                err=True,
            )
        if done:
            return
        time.sleep(0.1)


def _summary(local: LocalModel, plan: Plan | None) -> None:
    sizes = {f.name: f.size for f in plan.files} if plan is not None else {}
    names = [n if sizes.get(n) is None else f"{n} ({format_bytes(sizes[n] or 0)})" for n in local.files]
    if len(names) > _SHOWN_FILES:
        names = [*names[:_SHOWN_FILES], f"… and {len(names) - _SHOWN_FILES} more"]
    lines = [
        f"Pulled {local.id} ({local.revision} @ {local.commit[:12]})",
        f"  task     {local.task}",
        f"  engine   {local.engine}",
        f"  files    {names[0] if names else '-'}",
        *(f"           {n}" for n in names[1:]),
    ]
    if plan is not None:
        lines.append(f"  chosen   {plan.why}")
    lines += [f"  size     {format_bytes(local.size_bytes)}", f"  path     {local.path}"]
    click.echo("\n".join(lines))


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _settings(config_path: str | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        _fail(str(exc), 2)


def _fail_error(exc: UnimodelError) -> NoReturn:
    _fail(f"{exc.message} ({exc.status} {exc.code})")


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"unimodel: {message}", err=True)
    sys.exit(code)
