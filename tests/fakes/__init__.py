"""Faithful fake provider servers (OpenAI Chat Completions, Anthropic Messages) for the test-suite.

Usage (inside the test-suite, which imports this package as ``tests.fakes``)::

    script = FakeScript(FakeReply(text="Hi"))
    with LiveServer(create_openai_app(script)) as server:
        ...  # point the gateway (or an SDK) at server.url, then inspect script.requests
"""

from .anthropic_fake import create_anthropic_app
from .openai_fake import create_openai_app
from .script import FakeReply, FakeScript, RecordedRequest
from .server import LiveServer

__all__ = [
    "FakeReply",
    "FakeScript",
    "LiveServer",
    "RecordedRequest",
    "create_anthropic_app",
    "create_openai_app",
]
