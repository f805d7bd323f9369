"""`unimodel keys …` and `unimodel usage`: manage gateway keys and read the usage ledger from the shell.

Each command opens the store named by the config (`[store]`), migrating it if needed, like the server does.
Secrets are printed once, at creation; provider keys are read from stdin so they stay out of shell history.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .config import ConfigError, Settings, load_settings
from .store import ANY_KEY, UNCHANGED, AnyKey, Store, StoreError, Unchanged, UsageTotals
from .store.times import shown, to_utc
from .store.views import RECORD_FIELDS, key_view, record_view, totals_view

if TYPE_CHECKING:  # click >= 8.5 types ParamType by its value; older clicks cannot be subscripted at runtime
    _LimitType = click.ParamType[float | int | Unchanged | None, Any]
    _TimeType = click.ParamType[datetime, Any]
else:
    _LimitType = _TimeType = click.ParamType

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file (or $UNIMODEL_CONFIG)."
)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"unimodel: {message}", err=True)
    sys.exit(code)


def _settings(config_path: str | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as e:
        _fail(str(e), 2)


@contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    """The store, opened (and migrated); store errors and refused arguments end the command with status 1."""
    try:
        store = Store.open(settings.store)
    except StoreError as e:
        _fail(str(e))
    try:
        yield store
    except (StoreError, ValueError) as e:
        _fail(str(e))
    finally:
        store.close()


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _limit(value: float | None) -> str:
    if value is None:
        return "default"
    return "unlimited" if value == 0 else f"{value:g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


class LimitValue(_LimitType):
    """A limit: a number (0 = unlimited), or "default" for the server's `[limits]` value."""

    name = "number|default"

    def __init__(self, kind: type[float] | type[int]) -> None:
        self.kind = kind

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | int | Unchanged | None:
        if value is None or isinstance(value, int | float | Unchanged):
            return value
        if str(value).lower() == "default":
            return None
        try:
            number = self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not a {'whole ' if self.kind is int else ''}number or 'default'", param, ctx)
        if number < 0:
            self.fail("must be 0 (unlimited) or more", param, ctx)
        return number


_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or time (UTC when it names no zone), "now", or a time ago: "90s", "30m", "24h", "7d", "2w"."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text.lower() == "now":
        return now
    match = _RELATIVE.fullmatch(text)
    if match:
        try:
            return now - timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
        except OverflowError:
            raise ValueError(f"{shown(text)} ago is before the year 1") from None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{shown(text)} is neither an ISO 8601 date/time nor a time ago like 24h or 7d") from None
    return to_utc(value)  # ValueError, not OverflowError, for 0001-01-01T00:00:00+23:59


class TimeValue(_TimeType):
    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


# ---- keys ----------------------------------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Gateway keys: create, list, revoke, set limits, and hold provider keys (encrypted at rest)."""


@keys.command("create")
@config_option
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--rps", type=LimitValue(float), help="Requests per second (0 = unlimited; default: [limits] rps).")
@click.option("--concurrency", type=LimitValue(int), help="Open-model requests in flight (default: [limits]).")
@click.option("--admin", is_flag=True, help="The key may use the admin API.")
@click.option("--json", "as_json", is_flag=True, help='Print only {"id": …, "key": …}.')
def create_key(
    config_path: str | None, name: str, rps: float | None, concurrency: int | None, admin: bool, as_json: bool
) -> None:
    """Create a gateway key and print its secret (shown this once: only its hash is stored)."""
    with _store(_settings(config_path)) as store:
        created = store.create_key(name, rps=rps, concurrency=concurrency, admin=admin)
    if as_json:
        click.echo(json.dumps({"id": created.key.id, "key": created.secret}))
        return
    click.echo(f"Created {created.key.id} ({name}).")
    click.echo(created.secret)
    click.echo("This is the only time the key is shown: store it now (unimodel keeps only its hash).")


@keys.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--active", is_flag=True, help="Leave revoked keys out.")
def list_keys(config_path: str | None, as_json: bool, active: bool) -> None:
    """List gateway keys (never their secrets)."""
    with _store(_settings(config_path)) as store:
        found = store.list_keys(include_revoked=not active)
    if as_json:
        click.echo(json.dumps([key_view(key) for key in found], indent=2))
        return
    if not found:
        click.echo("No keys yet: `unimodel keys create --name NAME`.", err=True)
        return
    header = ["ID", "NAME", "PREFIX", "RPS", "CONCURRENCY", "ADMIN", "CREATED", "REVOKED", "PROVIDERS"]
    rows = [
        [
            key.id,
            key.name,
            key.prefix + "…",
            _limit(key.rps),
            _limit(key.concurrency),
            "yes" if key.admin else "no",
            _time(key.created_at),
            _time(key.revoked_at),
            ",".join(key.providers) or "-",
        ]
        for key in found
    ]
    click.echo(_table(header, rows))


@keys.command("revoke")
@config_option
@click.argument("key_id")
def revoke_key(config_path: str | None, key_id: str) -> None:
    """Revoke a key: running gateways refuse it within their cache interval ([auth] cache_ttl_s)."""
    with _store(_settings(config_path)) as store:
        before = store.get_key(key_id)
        key = store.revoke_key(key_id)
    if before.revoked_at is not None:
        click.echo(f"{key.id} ({key.name}) was already revoked at {_time(key.revoked_at)}.")
    else:
        click.echo(f"Revoked {key.id} ({key.name}).")


@keys.command("limits")
@config_option
@click.argument("key_id")
@click.option("--rps", type=LimitValue(float), default=UNCHANGED, help="Requests per second, 0, or 'default'.")
@click.option("--concurrency", type=LimitValue(int), default=UNCHANGED, help="In-flight requests, 0, or 'default'.")
def key_limits(
    config_path: str | None, key_id: str, rps: float | Unchanged | None, concurrency: int | Unchanged | None
) -> None:
    """Show or change a key's own limits (0 = unlimited, 'default' = the server's [limits] values)."""
    with _store(_settings(config_path)) as store:
        if rps is UNCHANGED and concurrency is UNCHANGED:
            key = store.get_key(key_id)
        else:
            key = store.update_limits(key_id, rps=rps, concurrency=concurrency)
    click.echo(f"{key.id} ({key.name}): rps {_limit(key.rps)}, concurrency {_limit(key.concurrency)}")


@keys.command("set-provider")
@config_option
@click.argument("key_id")
@click.argument("provider")
@click.argument("provider_key", required=False)
def set_provider(config_path: str | None, key_id: str, provider: str, provider_key: str | None) -> None:
    """Hold PROVIDER's key for a gateway key, encrypted; callers using it need no `provider-key` header.

    Without PROVIDER_KEY (or with "-") the key is read from stdin, so it stays out of shell history.
    """
    settings = _settings(config_path)
    if provider_key is None or provider_key == "-":
        if sys.stdin.isatty():
            provider_key = click.prompt(f"{provider} key", hide_input=True, err=True)
        else:
            provider_key = sys.stdin.read()
    provider_key = (provider_key or "").strip()
    if not provider_key:
        _fail("no provider key given (pass it as an argument or on stdin)")
    from .providers.registry import provider_names

    if provider not in provider_names(settings.providers):
        click.echo(f"unimodel: note: {provider!r} is not a provider this config knows; stored anyway", err=True)
    with _store(settings) as store:
        store.set_provider_key(key_id, provider, provider_key)
    click.echo(f"Stored the {provider} key for {key_id} (encrypted).")


@keys.command("delete-provider")
@config_option
@click.argument("key_id")
@click.argument("provider")
def delete_provider(config_path: str | None, key_id: str, provider: str) -> None:
    """Forget the PROVIDER key a gateway key holds."""
    with _store(_settings(config_path)) as store:
        deleted = store.delete_provider_key(key_id, provider)
    if deleted:
        click.echo(f"Deleted the {provider} key of {key_id}.")
    else:
        click.echo(f"{key_id} holds no {provider} key.", err=True)


# ---- usage ---------------------------------------------------------------------------------------------------------


def _totals_line(totals: UsageTotals) -> str:
    return (
        f"total: {totals.requests} requests, {totals.errors} errors, {totals.input_tokens} input tokens, "
        f"{totals.output_tokens} output tokens, {totals.inference_s:.3f} inference s, ${totals.cost_usd:.6f}"
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@click.command()
@config_option
@click.option("--from", "start", type=TimeValue(), help='Start (inclusive): ISO 8601, or ago like "24h", "7d".')
@click.option("--to", "end", type=TimeValue(), help="End (exclusive); same forms as --from.")
@click.option("--model", help="Only this model id.")
@click.option("--key", "key", help='Only this key id ("anonymous": calls made without a key).')
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="Most records listed.")
def usage(
    config_path: str | None,
    start: datetime | None,
    end: datetime | None,
    model: str | None,
    key: str | None,
    fmt: str,
    limit: int,
) -> None:
    """List usage records, oldest first, with totals over everything the filters select."""
    key_id: str | AnyKey | None = ANY_KEY if key is None else None if key == "anonymous" else key
    if start is not None and end is not None and start > end:  # almost always a swap: say so, not "0 records"
        raise click.BadParameter(
            f"{start.isoformat()} is later than --to ({end.isoformat()}); swap them", param_hint="'--from'"
        )
    with _store(_settings(config_path)) as store:
        if isinstance(key_id, str):
            store.get_key(key_id)  # an unknown id is a mistake, not "no usage"
        records = store.query_usage(key_id=key_id, start=start, end=end, model=model, limit=limit)
        totals = store.usage_totals(key_id=key_id, start=start, end=end, model=model)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"records": [record_view(r) for r in records], "totals": totals_view(totals)},
                indent=2,
            )
        )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(RECORD_FIELDS)
        for rec in records:
            row = record_view(rec)
            writer.writerow(["" if row[f] is None else row[f] for f in RECORD_FIELDS])
        click.echo(_totals_line(totals), err=True)  # stdout stays plain CSV
    else:
        header = ["TIME", "KEY", "MODEL", "STATUS", "IN", "OUT", "INFER_S", "COST_USD", "LATENCY_MS"]
        rows = [
            [
                _time(r.time),
                r.key_id or "anonymous",
                r.model,
                str(r.status),
                _cell(r.input_tokens),
                _cell(r.output_tokens),
                _cell(r.inference_s),
                _cell(r.cost_usd),
                _cell(r.latency_ms),
            ]
            for r in records
        ]
        if rows:
            click.echo(_table(header, rows))
        click.echo(_totals_line(totals))
    if totals.requests > len(records):
        click.echo(
            f"unimodel: showing the first {len(records)} of {totals.requests} records "
            "(narrow with --from/--to/--model/--key, or raise --limit)",
            err=True,
        )
