"""`unimodel keys …` and `unimodel usage`, run through click (and once as the installed command)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr

from unimodel.cli import cli
from unimodel.cli_store import parse_time
from unimodel.config import StoreConfig
from unimodel.store import Store, UsageRecord

from .fixtures_pg import free_port


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file naming a fresh SQLite store; the environment must not point anywhere else."""
    for var in ("UNIMODEL_CONFIG", "UNIMODEL_SECRET_KEY", "UNIMODEL_STORE__URL", "UNIMODEL_STORE__DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "unimodel.toml"
    path.write_text(f'[store]\ndata_dir = "{tmp_path / "data"}"\n')
    return path


@pytest.fixture
def store(config: Path, tmp_path: Path) -> Iterator[Store]:
    """The same store the commands use, to check what they did."""
    s = Store.open(StoreConfig(data_dir=str(tmp_path / "data")))
    yield s
    s.close()


def run(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, [*args[:2], "--config", str(config), *args[2:]], input=input)


def run_usage(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["usage", "--config", str(config), *args])


def test_create_json_prints_exactly_the_id_and_key(config: Path, store: Store) -> None:
    result = run(config, "keys", "create", "--name", "ci", "--rps", "5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"id", "key"}
    assert result.stdout == json.dumps({"id": data["id"], "key": data["key"]}) + "\n"
    found = store.find_key(data["key"])
    assert found is not None and (found.id, found.name, found.rps) == (data["id"], "ci", 5)


def test_create_says_the_key_is_shown_once(config: Path, store: Store) -> None:
    result = run(config, "keys", "create", "--name", "alice", "--admin", "--concurrency", "2")
    assert result.exit_code == 0, result.output
    [key] = store.list_keys()
    secret = next(line for line in result.stdout.splitlines() if line.startswith("um_"))
    assert store.find_key(secret) == key and key.admin and key.concurrency == 2
    assert "only time the key is shown" in result.stdout


def test_list_revoke_and_limits(config: Path, store: Store) -> None:
    alice = store.create_key("alice", rps=2)
    bob = store.create_key("bob").key
    store.set_provider_key(bob.id, "openai", "sk-PLAINTEXT")

    table = run(config, "keys", "list")
    assert table.exit_code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "PREFIX", "RPS", "CONCURRENCY", "ADMIN", "CREATED", "REVOKED", "PROVIDERS"]
    assert rows[0].split()[:4] == [alice.key.id, "alice", alice.key.prefix + "…", "2"]
    assert rows[1].split()[-1] == "openai"
    assert alice.secret not in table.output and "PLAINTEXT" not in table.output

    revoked = run(config, "keys", "revoke", alice.key.id)
    assert revoked.exit_code == 0 and "Revoked" in revoked.stdout
    again = run(config, "keys", "revoke", alice.key.id)
    assert again.exit_code == 0 and "already revoked" in again.stdout

    listed = json.loads(run(config, "keys", "list", "--json").stdout)
    assert [k["id"] for k in listed] == [alice.key.id, bob.id]
    assert listed[0]["revokedAt"] is not None and listed[1]["providers"] == ["openai"]
    assert set(listed[0]) == {
        "id",
        "name",
        "prefix",
        "rps",
        "concurrency",
        "admin",
        "createdAt",
        "revokedAt",
        "providers",
    }
    assert [k["id"] for k in json.loads(run(config, "keys", "list", "--json", "--active").stdout)] == [bob.id]

    limits = run(config, "keys", "limits", bob.id, "--rps", "0", "--concurrency", "3")
    assert limits.exit_code == 0 and "rps unlimited, concurrency 3" in limits.stdout
    reset = run(config, "keys", "limits", bob.id, "--concurrency", "default")
    assert "rps unlimited, concurrency default" in reset.stdout
    assert (store.get_key(bob.id).rps, store.get_key(bob.id).concurrency) == (0, None)
    assert run(config, "keys", "limits", bob.id, "--rps", "-1").exit_code == 2


@pytest.mark.parametrize(
    "args",
    [("revoke",), ("limits", "--rps", "1"), ("set-provider", "openai", "sk-1"), ("delete-provider", "openai")],
)
def test_an_unknown_key_id_is_exit_1_with_a_message(config: Path, args: tuple[str, ...]) -> None:
    result = run(config, "keys", args[0], "key_0123456789abcdef", *args[1:])
    assert result.exit_code == 1
    assert "unimodel: no gateway key has the id 'key_0123456789abcdef'" in result.stderr


def test_set_provider_reads_the_key_from_stdin(config: Path, store: Store) -> None:
    key = store.create_key("alice").key
    result = run(config, "keys", "set-provider", key.id, "openai", input="sk-FROM-STDIN\n")
    assert result.exit_code == 0, result.output
    assert "sk-FROM-STDIN" not in result.output
    dash = run(config, "keys", "set-provider", key.id, "anthropic", "-", input="sk-ant-DASH")
    assert dash.exit_code == 0, dash.output
    assert store.provider_keys(key.id) == {"openai": "sk-FROM-STDIN", "anthropic": "sk-ant-DASH"}

    empty = run(config, "keys", "set-provider", key.id, "openai", input="")
    assert empty.exit_code == 1 and "no provider key given" in empty.stderr

    deleted = run(config, "keys", "delete-provider", key.id, "anthropic")
    assert deleted.exit_code == 0 and store.get_key(key.id).providers == ("openai",)


def test_usage_table_csv_and_json(config: Path, store: Store) -> None:
    alice = store.create_key("alice").key.id
    now = datetime.now(UTC).replace(microsecond=0)

    def record(ago: timedelta, key_id: str | None, model: str, status: int = 200) -> UsageRecord:
        return UsageRecord(
            time=now - ago,
            request_id=f"req-{ago.total_seconds():.0f}",
            key_id=key_id,
            model=model,
            kind="closed",
            provider="openai",
            status=status,
            input_tokens=100,
            output_tokens=20,
            inference_s=None,
            cost_usd=0.5,
            latency_ms=80.0,
        )

    store.write_usage(
        [
            record(timedelta(days=3), alice, "openai/gpt-4o"),
            record(timedelta(hours=2), alice, "openai/gpt-4o-mini", status=500),
            record(timedelta(hours=1), None, "openai/gpt-4o"),
        ]
    )

    table = run_usage(config)
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[-1].startswith("total: 3 requests, 1 errors, 300 input tokens, 60 output tokens")
    assert "anonymous" in table.stdout

    as_csv = run_usage(config, "--from", "24h", "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["requestId"], r["keyId"], r["status"]) for r in rows] == [
        ("req-7200", alice, "500"),
        ("req-3600", "", "200"),
    ]
    assert "total: 2 requests" in as_csv.stderr  # stdout stays plain CSV

    as_json = json.loads(run_usage(config, "--key", alice, "--format", "json").stdout)
    assert [r["requestId"] for r in as_json["records"]] == ["req-259200", "req-7200"]
    assert as_json["totals"]["requests"] == 2 and as_json["totals"]["costUsd"] == pytest.approx(1.0)
    assert datetime.fromisoformat(as_json["records"][0]["time"]) == now - timedelta(days=3)

    anonymous = json.loads(run_usage(config, "--key", "anonymous", "--format", "json").stdout)
    assert [r["keyId"] for r in anonymous["records"]] == [None]
    by_model = json.loads(run_usage(config, "--model", "openai/gpt-4o", "--to", "2h", "--format", "json").stdout)
    assert [r["requestId"] for r in by_model["records"]] == ["req-259200"]

    limited = run_usage(config, "--limit", "1")
    assert "showing the first 1 of 3 records" in limited.stderr
    unknown = run_usage(config, "--key", "key_0123456789abcdef")
    assert unknown.exit_code == 1 and "no gateway key has the id" in unknown.stderr
    bad_time = run_usage(config, "--from", "last tuesday")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.stderr


def test_parse_time() -> None:
    now = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
    assert parse_time("24h", now) == now - timedelta(hours=24)
    assert parse_time("7d", now) == now - timedelta(days=7)
    assert parse_time("90s", now) == now - timedelta(seconds=90)
    assert parse_time("30m", now) == now - timedelta(minutes=30)
    assert parse_time("2w", now) == now - timedelta(weeks=2)
    assert parse_time("now", now) == now
    assert parse_time("2026-05-01") == datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_time("2026-05-01T10:00:00+02:00") == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert parse_time("2026-05-01T10:00Z") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--from", "0001-01-01T00:00:00+23:59"),
            "Invalid value for '--from': 0001-01-01T00:00:00+23:59 is outside the years 1 to 9999 once converted to UTC",
        ),
        (
            ("--to", "9999-12-31T23:59:59-00:01"),
            "Invalid value for '--to': 9999-12-31T23:59:59-00:01 is outside the years 1 to 9999 once converted to UTC",
        ),
        (("--from", "99999999999d"), "Invalid value for '--from': '99999999999d' ago is before the year 1"),
        (
            ("--from", "2026-05-02", "--to", "2026-05-01"),
            "Invalid value for '--from': 2026-05-02T00:00:00+00:00 is later than --to (2026-05-01T00:00:00+00:00); "
            "swap them",
        ),
    ],
)
def test_out_of_range_and_swapped_times_are_usage_errors(config: Path, args: tuple[str, ...], error: str) -> None:
    """Exit 2 naming the option, never a traceback (0001-01-01T00:00:00+23:59 was an OverflowError)."""
    result = run_usage(config, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {error}"


def test_an_empty_time_range_is_no_records_not_an_error(config: Path) -> None:
    result = run_usage(
        config, "--from", "2026-05-01T02:00:00+02:00", "--to", "2026-05-01T00:00:00Z", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records"] == []


def test_an_unreachable_database_is_exit_1_with_the_password_hidden(config: Path, tmp_path: Path) -> None:
    port = free_port()
    config.write_text(f'[store]\nurl = "postgresql+psycopg://u:hunter2@127.0.0.1:{port}/x"\ndata_dir = "{tmp_path}"\n')
    result = run(config, "keys", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"unimodel: cannot reach the database postgresql+psycopg://u:***@127.0.0.1:{port}/x"
    )
    assert "hunter2" not in result.output


def test_a_bad_config_is_exit_2(config: Path) -> None:
    config.write_text("[store]\nflush_batch = 0\n")
    result = run(config, "keys", "list")
    assert result.exit_code == 2 and "store.flush_batch" in result.stderr


def test_the_commands_against_postgres(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same commands on PostgreSQL, through the installed `unimodel` command and the environment."""
    monkeypatch.delenv("UNIMODEL_CONFIG", raising=False)
    env = {
        **os.environ,
        "UNIMODEL_STORE__URL": postgres_url,
        "UNIMODEL_STORE__DATA_DIR": str(tmp_path),
        "UNIMODEL_SECRET_KEY": "a passphrase for the tests",
    }
    exe = Path(sys.executable).with_name("unimodel")

    def unimodel(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], env=env, input=input, capture_output=True, text=True, timeout=60)

    created = unimodel("keys", "create", "--name", "pg", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    set_provider = unimodel("keys", "set-provider", key["id"], "openai", input="sk-PG-SECRET")
    assert set_provider.returncode == 0, set_provider.stderr
    listed = unimodel("keys", "list", "--json")
    entry = next(k for k in json.loads(listed.stdout) if k["id"] == key["id"])
    assert entry["providers"] == ["openai"] and key["key"] not in listed.stdout
    store = Store.open(StoreConfig(url=SecretStr(postgres_url), data_dir=str(tmp_path)))
    monkeypatch.setenv("UNIMODEL_SECRET_KEY", "a passphrase for the tests")
    assert store.provider_keys(key["id"]) == {"openai": "sk-PG-SECRET"}
    store.close()
    assert unimodel("keys", "revoke", key["id"]).returncode == 0
