"""The cluster API changes a model for everyone: with keys on only an admin key may change it, and no request can
take a model past the instances its configuration allows."""

from __future__ import annotations

import httpx

from .platform_helpers import OPEN_CHAT, Platform, PlatformFactory


def test_a_normal_key_can_read_a_cluster_but_not_change_it(platform: Platform) -> None:
    _, key = platform.create_key()
    user = {"authorization": f"Key {key}"}
    base = platform.url + f"/models/v2/{OPEN_CHAT}"
    assert httpx.get(base, headers=user).status_code == 200
    assert httpx.get(platform.url + "/models/v2/list/clusters", headers=user).status_code == 200
    for method, body in [
        ("PUT", {"capacity": {"min": 1, "desired": 1, "max": 1}}),
        ("PATCH", {"status": "off"}),
        ("DELETE", None),
    ]:
        r = httpx.request(method, base, json=body, headers=user)
        assert r.status_code == 403, (method, r.text)
        assert r.json()["code"] == "permission_denied" and "admin key" in r.json()["error"]
    status = httpx.get(base, headers=user).json()["output"]
    assert status["status"] != "off" and status["capacity"]["min"] == 0  # nothing changed
    # the model still answers the normal key
    r = httpx.post(base, json={"input": "hi"}, headers=user, timeout=30)
    assert r.status_code == 200, r.text


def test_an_admin_key_changes_a_cluster(platform: Platform) -> None:
    base = platform.url + f"/models/v2/{OPEN_CHAT}"
    r = httpx.patch(base, json={"status": "off"}, headers=platform.admin)
    assert r.status_code == 200 and r.json()["output"]["status"] == "off"
    r = httpx.patch(base, json={"status": "on"}, headers=platform.admin)
    assert r.status_code == 200 and r.json()["output"]["status"] != "off"


def test_no_request_raises_capacity_past_the_configured_max(platform: Platform) -> None:
    base = platform.url + f"/models/v2/{OPEN_CHAT}"  # configured with max_instances = 1
    for field, capacity in [
        ("max", {"min": 6, "desired": 6, "max": 1000}),
        ("desired", {"desired": 2}),
        ("min", {"min": 2}),
    ]:
        r = httpx.put(base, json={"capacity": capacity}, headers=platform.admin)
        assert r.status_code == 400, r.text
        assert f"capacity.{field}" in r.json()["error"] and "max_instances (1)" in r.json()["error"]
    status = httpx.get(base, headers=platform.admin).json()["output"]
    assert status["capacity"]["max"] == 1 and status["instances"] <= 1


def test_open_mode_lets_loopback_callers_change_clusters_within_the_config(
    platform_factory: PlatformFactory,
) -> None:
    p = platform_factory(auth={"mode": "open"})
    base = p.url + f"/models/v2/{OPEN_CHAT}"
    assert httpx.patch(base, json={"status": "off"}).status_code == 200
    r = httpx.put(base, json={"capacity": {"max": 5}})
    assert r.status_code == 400 and "max_instances (1)" in r.json()["error"]
