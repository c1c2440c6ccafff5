"""Logging: JSON lines for machines or readable lines for people, each carrying the id of
the request it was written for."""

import json
import logging
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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
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


def config(log_format: Literal["json", "text"]) -> dict[str, Any]:
    """A logging.config.dictConfig for the whole process, gunicorn's loggers included."""
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
    # Gunicorn's and uvicorn's own loggers write through the same handler (uvicorn's worker
    # copies gunicorn.error's handlers onto uvicorn.error).
    own = {"handlers": ["default"], "propagate": False, "level": "INFO"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {"default": handler},
        "root": {"level": "INFO", "handlers": ["default"]},
        "loggers": {
            "gunicorn.error": own,
            "gunicorn.access": {**own, "level": "WARNING"},  # we log requests ourselves
            "pgserver": {"level": "WARNING"},  # chatty at INFO
        },
    }
