"""Talking to an upstream over HTTP, shared by closed providers and open-model instances: the transport
(transport.py), server-sent events (sse.py) and the loop from a streamed body to canonical events (events.py)."""
