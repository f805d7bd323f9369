"""Every form of the Authorization header the clients send is read the same way."""

from __future__ import annotations

import httpx
import pytest

from unimodel.gateway.auth import gateway_key

from .conftest import OPENAI_KEY, Fake
from .fakes.script import FakeReply
from .fakes.server import LiveServer


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Key gw-123", "gw-123"),
        ("key gw-123", "gw-123"),
        ("Bearer gw-123", "gw-123"),
        ("BEARER   gw-123 ", "gw-123"),
        ("gw-123", "gw-123"),
        ("", None),
        ("Bearer ", None),
    ],
)
def test_gateway_key_is_read_from_key_bearer_and_bare_forms(header: str, key: str | None) -> None:
    assert gateway_key({"authorization": header}) == key


@pytest.mark.parametrize("authorization", ["Key gw-123", "Bearer gw-123", "gw-123"])
def test_all_authorization_forms_are_accepted_and_never_forwarded(
    gateway: LiveServer, openai_fake: Fake, authorization: str
) -> None:
    openai_fake.script.push(FakeReply(text="ok"))
    r = httpx.post(
        gateway.url + "/models/v2/openai/gpt-4o-mini",
        json={"input": "hi"},
        headers={"authorization": authorization, "provider-key": OPENAI_KEY, "lang": "python"},
    )
    assert r.status_code == 200, r.text
    assert openai_fake.script.last_request.header("authorization") == f"Bearer {OPENAI_KEY}"
