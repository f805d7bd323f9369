"""The ASGI app: routes, streaming responses, wiring frontends to backends."""

from .app import create_app

__all__ = ["create_app"]
