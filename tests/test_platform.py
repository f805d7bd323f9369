"""The platform around every request, end to end over HTTP: gateway keys (admin API and enforcement), stored
provider keys, rate and concurrency limits, the usage ledger and its API, request ids, metrics and readiness."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, Fake
from .fakes.script import FakeReply
from .platform_helpers import CHAT, OPEN_CHAT, Platform, PlatformFactory, chat

# -- gateway keys -----------------------------------------------------------------------------------------------


def test_keys_mode_refuses_missing_unknown_and_revoked_keys_on_both_surfaces(platform: Platform) -> None:
    r = chat(platform, None)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"
    r = httpx.post(platform.url + "/models/v2/openai/gpt-4o", json={"input": "hi"})
    assert r.status_code == 401
    assert r.json()["code"] == "missing_api_key" and r.json()["output"] is None

    r = chat(platform, "um_not-a-key-of-this-server")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"

    key_id, key = platform.create_key()
    assert chat(platform, key).status_code == 200
    r = httpx.delete(platform.url + f"/models/v2/admin/keys/{key_id}", headers=platform.admin)
    assert r.status_code == 200 and r.json()["output"]["revokedAt"]
    r = chat(platform, key)
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]["message"]


def test_every_authorization_form_the_sdks_send_is_accepted(platform: Platform) -> None:
    _, key = platform.create_key()
    for header in (f"Key {key}", f"Bearer {key}", key):
        r = httpx.post(
            platform.url + "/models/v2/openai/gpt-4o",
            json={"input": "hi"},
            headers={"authorization": header, "provider-key": OPENAI_KEY},
        )
        assert r.status_code == 200, (header[:6], r.text)


def test_public_paths_need_no_key(platform: Platform) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/"):
        assert httpx.get(platform.url + path).status_code == 200, path


def test_admin_api_manages_keys_and_never_returns_a_secret(platform: Platform) -> None:
    r = httpx.post(
        platform.url + "/models/v2/admin/keys",
        json={"name": "analytics", "rps": 5, "concurrency": 2},
        headers=platform.admin,
    )
    assert r.status_code == 201
    created = r.json()["output"]
    secret = created["key"]
    assert secret.startswith("um_") and created["prefix"] == secret[: len(created["prefix"])]
    assert created["rps"] == 5 and created["concurrency"] == 2 and created["admin"] is False

    listed = httpx.get(platform.url + "/models/v2/admin/keys", headers=platform.admin)
    assert listed.status_code == 200
    assert created["id"] in {k["id"] for k in listed.json()["output"]}
    assert secret not in listed.text and platform.admin_key not in listed.text

    r = httpx.patch(platform.url + f"/models/v2/admin/keys/{created['id']}", json={"rps": None}, headers=platform.admin)
    assert r.status_code == 200 and r.json()["output"]["rps"] is None and r.json()["output"]["concurrency"] == 2

    r = httpx.put(
        platform.url + f"/models/v2/admin/keys/{created['id']}/providers/openai",
        json={"key": OPENAI_KEY},
        headers=platform.admin,
    )
    assert r.status_code == 200 and r.json()["output"]["providers"] == ["openai"]
    assert OPENAI_KEY not in r.text
    got = httpx.get(platform.url + f"/models/v2/admin/keys/{created['id']}", headers=platform.admin)
    assert OPENAI_KEY not in got.text and secret not in got.text

    r = httpx.delete(platform.url + f"/models/v2/admin/keys/{created['id']}/providers/openai", headers=platform.admin)
    assert r.status_code == 200 and r.json()["output"]["providers"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/models/v2/admin/keys", {}, "name"),
        ("POST", "/models/v2/admin/keys", {"name": "x", "rps": -1}, "rps"),
        ("POST", "/models/v2/admin/keys", {"name": "x", "rps": "5"}, "rps"),
        ("POST", "/models/v2/admin/keys", {"name": "x", "colour": "red"}, "colour"),
        ("PATCH", "/models/v2/admin/keys/KEY", {"concurrency": 1.5}, "concurrency"),
        ("PUT", "/models/v2/admin/keys/KEY/providers/openai", {}, "key"),
        ("PUT", "/models/v2/admin/keys/KEY/providers/nosuchvendor", {"key": "k"}, "provider"),
    ],
)
def test_malformed_admin_requests_are_400_naming_the_field(
    platform: Platform, method: str, path: str, body: dict[str, Any], param: str
) -> None:
    key_id, _ = platform.create_key()
    r = httpx.request(method, platform.url + path.replace("KEY", key_id), json=body, headers=platform.admin)
    assert r.status_code == 400, r.text
    assert param in r.json()["error"]


def test_admin_api_bad_json_and_unknown_ids(platform: Platform) -> None:
    r = httpx.post(platform.url + "/models/v2/admin/keys", content=b"{not json", headers=platform.admin)
    assert r.status_code == 400
    r = httpx.delete(platform.url + "/models/v2/admin/keys/key_0000000000000000", headers=platform.admin)
    assert r.status_code == 404 and "key_0000000000000000" in r.json()["error"]


def test_admin_api_needs_an_admin_key(platform: Platform) -> None:
    _, key = platform.create_key()
    r = httpx.get(platform.url + "/models/v2/admin/keys", headers={"authorization": f"Key {key}"})
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    r = httpx.get(platform.url + "/models/v2/admin/keys")
    assert r.status_code == 401


# -- stored provider keys ---------------------------------------------------------------------------------------


def test_stored_provider_key_is_used_and_the_header_wins(platform: Platform, openai_fake: Fake) -> None:
    key_id, key = platform.create_key()
    assert chat(platform, key, provider_key=None).json()["error"]["code"] == "missing_provider_key"
    r = httpx.put(
        platform.url + f"/models/v2/admin/keys/{key_id}/providers/openai",
        json={"key": OPENAI_KEY},
        headers=platform.admin,
    )
    assert r.status_code == 200
    r = chat(platform, key, provider_key=None)
    assert r.status_code == 200, r.text
    assert openai_fake.script.last_request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    # the caller's header wins over the stored key (here a wrong one: the fake says 401)
    r = chat(platform, key, provider_key="sk-wrong")
    assert r.status_code == 401 and r.json()["error"]["code"] == "provider_auth_failed"


def test_stored_key_wins_over_the_server_config_key(platform_factory: PlatformFactory, openai_fake: Fake) -> None:
    p = platform_factory(providers={"openai": {"base_url": openai_fake.url + "/v1", "api_key": "sk-server-wrong"}})
    key_id, key = p.create_key()
    assert chat(p, key, provider_key=None).status_code == 401  # the server's (wrong) key was used
    httpx.put(p.url + f"/models/v2/admin/keys/{key_id}/providers/openai", json={"key": OPENAI_KEY}, headers=p.admin)
    assert chat(p, key, provider_key=None).status_code == 200


# -- limits -----------------------------------------------------------------------------------------------------


def test_rate_limit_headers_and_429_with_retry_after(platform_factory: PlatformFactory) -> None:
    p = platform_factory(limits={"rps": 2})
    _, key = p.create_key()
    first = chat(p, key)
    assert first.status_code == 200
    assert first.headers["ratelimit-limit"] == "2"
    assert first.headers["ratelimit-remaining"] == "1"
    assert int(first.headers["ratelimit-reset"]) >= 1
    assert chat(p, key).status_code == 200
    refused = chat(p, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    # the limit is per key
    _, other = p.create_key("other")
    assert chat(p, other).status_code == 200
    time.sleep(0.6)
    assert chat(p, key).status_code == 200  # refilled at 2 per second


def test_a_keys_own_rps_overrides_the_default(platform_factory: PlatformFactory) -> None:
    p = platform_factory(limits={"rps": 1})
    _, key = p.create_key(rps=50)
    assert all(chat(p, key).status_code == 200 for _ in range(5))


def test_concurrent_open_model_requests_are_limited_per_key(platform: Platform) -> None:
    _, key = platform.create_key(concurrency=2)
    # warm the instance so the test measures the limit, not a cold start
    assert (
        httpx.post(
            platform.url + f"/models/v2/{OPEN_CHAT}", json={"input": "warm"}, headers={"authorization": key}, timeout=30
        ).status_code
        == 200
    )

    def call(_: int) -> httpx.Response:
        return httpx.post(
            platform.url + f"/models/v2/{OPEN_CHAT}", json={"input": "hi"}, headers={"authorization": key}, timeout=30
        )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(4)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 429, 429], codes
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["code"] == "concurrency_limit_exceeded"
    assert refused.headers["retry-after"] == "1"
    # slots come back when requests finish
    assert call(0).status_code == 200


# -- usage ledger -----------------------------------------------------------------------------------------------


def test_usage_records_each_call_with_tokens_cost_and_status(platform_factory: PlatformFactory) -> None:
    p = platform_factory(prices={"openai/*": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}})
    key_id, key = p.create_key()
    _, other = p.create_key("other")
    r = chat(p, key)
    assert r.status_code == 200
    ok = chat(p, key)
    streamed = httpx.post(
        p.url + "/v1/chat/completions",
        json={"model": "openai/gpt-4o", **CHAT, "stream": True, "stream_options": {"include_usage": True}},
        headers={"authorization": f"Bearer {key}", "provider-key": OPENAI_KEY},
    )
    assert streamed.status_code == 200
    failed = chat(p, key, provider_key="sk-wrong")
    assert failed.status_code == 401
    chat(p, other)

    out = p.usage(key)
    records = out["records"]
    assert len(records) == 4, records
    assert {r["keyId"] for r in records} == {key_id}
    first = records[0]
    assert first["model"] == "openai/gpt-4o" and first["provider"] == "openai" and first["kind"] == "closed"
    assert first["status"] == 200 and first["inputTokens"] > 0 and first["outputTokens"] > 0
    expected = (first["inputTokens"] * 2.5 + first["outputTokens"] * 10.0) / 1e6
    assert first["costUsd"] == pytest.approx(expected)
    assert first["latencyMs"] > 0
    assert first["requestId"] == r.headers["x-request-id"]
    assert records[2]["outputTokens"] > 0  # the streamed call's usage was noted from its stream
    assert records[3]["status"] == 401
    totals = out["totals"]
    assert totals["requests"] == 4 and totals["errors"] == 1
    assert totals["inputTokens"] == sum(r["inputTokens"] or 0 for r in records)
    assert ok.headers["x-request-id"] in {r["requestId"] for r in records}


def test_usage_filters_and_bad_times(platform: Platform) -> None:
    _, key = platform.create_key()
    chat(platform, key)
    chat(platform, key, model="anthropic/claude-sonnet-4-5", provider_key=ANTHROPIC_KEY)
    assert len(platform.usage(key, model="anthropic/claude-sonnet-4-5")["records"]) == 1
    assert platform.usage(key, **{"from": "2999-01-01"})["records"] == []
    assert len(platform.usage(key, **{"from": "2020-01-01T00:00:00Z", "to": "2999-01-01"})["records"]) == 2
    r = httpx.get(platform.url + "/models/v2/usage", params={"from": "yesterday"}, headers={"authorization": key})
    assert r.status_code == 400 and "from" in r.json()["error"]


def test_open_model_usage_has_inference_seconds(platform: Platform) -> None:
    _, key = platform.create_key()
    r = httpx.post(
        platform.url + f"/models/v2/{OPEN_CHAT}", json={"input": "hello"}, headers={"authorization": key}, timeout=30
    )
    assert r.status_code == 200
    (record,) = platform.usage(key)["records"]
    assert record["kind"] == "open" and record["provider"] is None and record["model"] == OPEN_CHAT
    assert record["inferenceSeconds"] == pytest.approx(float(r.headers["inference-time"]), abs=0.002)
    assert record["inferenceSeconds"] >= 0.5


# -- request ids, logs, metrics, readiness ----------------------------------------------------------------------


def test_request_id_is_echoed_and_in_the_logs(platform: Platform, caplog: pytest.LogCaptureFixture) -> None:
    _, key = platform.create_key()
    r = chat(platform, key)
    generated = r.headers["x-request-id"]
    assert len(generated) == 32
    with caplog.at_level(logging.WARNING, logger="unimodel"):
        r = httpx.post(
            platform.url + "/v1/chat/completions",
            json={"model": "openai/gpt-4o", **CHAT},
            headers={"authorization": key, "provider-key": OPENAI_KEY, "x-request-id": "trace-42"},
        )
    assert r.headers["x-request-id"] == "trace-42"
    r = httpx.post(platform.url + "/v1/chat/completions", content=b"{", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32


def test_request_id_reaches_log_records_of_failures(
    platform: Platform, openai_fake: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = platform.create_key()
    openai_fake.script.push(FakeReply(status=500))
    with caplog.at_level(logging.WARNING, logger="unimodel"):
        r = httpx.post(
            platform.url + "/v1/chat/completions",
            json={"model": "openai/gpt-4o", **CHAT},
            headers={"authorization": key, "provider-key": OPENAI_KEY, "x-request-id": "req-500"},
        )
    assert r.status_code >= 500
    assert any(getattr(rec, "request_id", None) == "req-500" for rec in caplog.records), [
        (rec.getMessage(), getattr(rec, "request_id", None)) for rec in caplog.records
    ]


def test_metrics_count_requests_tokens_and_open_models(platform: Platform) -> None:
    _, key = platform.create_key()
    chat(platform, key)
    httpx.post(
        platform.url + f"/models/v2/{OPEN_CHAT}", json={"input": "hi"}, headers={"authorization": key}, timeout=30
    )
    text = httpx.get(platform.url + "/metrics", headers=platform.admin).text
    assert 'unimodel_requests_total{model="openai/gpt-4o",status="200",surface="openai"}' in text
    assert 'unimodel_tokens_total{direction="output",model="openai/gpt-4o"}' in text
    assert 'unimodel_upstream_duration_seconds_count{outcome="ok",provider="openai"}' in text
    assert 'unimodel_request_duration_seconds_bucket{le="0.5",model="openai/gpt-4o",surface="openai"}' in text
    assert f'unimodel_open_instances{{model="{OPEN_CHAT}",state="ready"}} 1.0' in text
    assert f'unimodel_open_cold_starts_total{{model="{OPEN_CHAT}"}}' in text
    assert f'unimodel_open_queue_depth{{model="{OPEN_CHAT}"}} 0.0' in text
    assert "unimodel_usage_records_buffered" in text and "unimodel_store_up 1.0" in text


def test_readyz_reports_each_check(platform: Platform) -> None:
    r = httpx.get(platform.url + "/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["store"]["ok"] and body["checks"]["usage_ledger"]["ok"]


def test_no_secret_reaches_logs_errors_or_the_ledger(
    platform: Platform, openai_fake: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key_id, key = platform.create_key()
    httpx.put(
        platform.url + f"/models/v2/admin/keys/{key_id}/providers/openai",
        json={"key": OPENAI_KEY},
        headers=platform.admin,
    )
    bodies = [chat(platform, key, provider_key=None).text]
    openai_fake.script.push(FakeReply(status=401), FakeReply(status=500), FakeReply(status=429, retry_after=1))
    bodies += [chat(platform, key, provider_key=None).text for _ in range(3)]
    bodies.append(chat(platform, key + "x").text)
    bodies.append(httpx.get(platform.url + "/models/v2/admin/keys", headers=platform.admin).text)
    bodies.append(httpx.get(platform.url + "/models/v2/usage", headers={"authorization": key}).text)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    secret_key = (Path(platform.settings.store.data_dir) / "secret.key").read_bytes().decode().strip()
    for secret in (key, OPENAI_KEY, platform.admin_key, secret_key):
        assert secret not in logged
        for body in bodies:
            assert secret not in body
    rows = Path(platform.settings.store.data_dir) / "unimodel.db"
    raw = rows.read_bytes() + (
        rows.with_name("unimodel.db-wal").read_bytes() if rows.with_name("unimodel.db-wal").exists() else b""
    )
    for secret in (key, OPENAI_KEY, platform.admin_key):
        assert secret.encode() not in raw


# -- auth modes -------------------------------------------------------------------------------------------------


def test_open_mode_needs_no_key_and_ignores_unknown_ones(platform_factory: PlatformFactory) -> None:
    p = platform_factory(auth={"mode": "open"})
    assert chat(p, None).status_code == 200
    assert chat(p, "sk-whatever-the-sdk-insists-on").status_code == 200
    key_id, key = p.create_key()
    chat(p, key)
    assert [r["keyId"] for r in p.usage(key)["records"]] == [key_id]
    anonymous = httpx.get(p.url + "/models/v2/usage").json()["output"]["records"]
    assert len(anonymous) == 2 and {r["keyId"] for r in anonymous} == {None}
    # the admin API still needs an admin key
    assert httpx.get(p.url + "/models/v2/admin/keys").status_code == 401
