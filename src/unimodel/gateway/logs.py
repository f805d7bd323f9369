"""Logging: one JSON object per line (or plain text), each record carrying the request id it belongs to.

The request id lives in a context variable set by the platform middleware, so every log line written while a
request is handled — by the gateway, a provider client or the runtime — names it without being passed along.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("unimodel_request_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_JSON_FIELDS = ["levelname", "name", "message", "request_id"]


_installed = False


def install_request_ids() -> None:
    """Stamp every log record created from now on with the current request id (or "-"); idempotent. A record
    factory rather than a handler filter, so every handler — test capture included — sees the id."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.request_id = request_id_var.get() or "-"
        return record

    logging.setLogRecordFactory(record_with_request_id)


def _drop_color_message(record: logging.LogRecord) -> bool:
    record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return True


def configure_logging(level: str = "info", fmt: Literal["json", "text"] = "json") -> None:
    """Replace the root handlers with one stderr handler in the chosen format; quiet the chatty libraries."""
    install_request_ids()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_drop_color_message)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                _JSON_FIELDS,
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",  # ISO 8601, UTC, with microseconds
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("httpx", "httpcore", "alembic", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    # The platform middleware writes the access log (`[server] access_log`), with request ids and key ids.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
