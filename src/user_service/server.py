"""The production server: granian's worker processes on uvloop (a dead worker is replaced;
SIGTERM drains in-flight requests within APP_GRACEFUL_TIMEOUT, then exits 0).

Granian, not gunicorn + uvicorn: `make bench` served the same app 1.1-1.2x faster on it
(docs/performance.md)."""

import functools
import importlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from granian.constants import Interfaces, Loops
from granian.server import Server
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from . import logs
from .config import Settings
from .database import alive


def metrics_directory() -> Path:
    """An empty folder for the workers' metrics files, named by PROMETHEUS_MULTIPROC_DIR.

    Call before prometheus_client is first imported: it reads the variable then.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    directory = Path(configured or tempfile.mkdtemp(prefix="user-service-metrics-"))
    # Files of an earlier run would add its counts to ours.
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def _forget_dead_workers() -> None:
    # A worker that died (SIGKILL, a crash) left its live gauges' files, which would keep
    # adding its last values (requests in flight, pool connections) to the sums. Granian
    # has no hook on a worker's death, but replaces it at once: the new one clears them.
    from prometheus_client import multiprocess  # see metrics_directory

    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        if not alive(pid):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _load(app: str, forwarded_allow_ips: str) -> ProxyHeadersMiddleware:
    # In each worker, after the fork: its own app and pool.
    _forget_dead_workers()
    module, _, name = app.partition(":")
    loaded: ASGIApp = getattr(importlib.import_module(module), name)
    # The client's address and scheme as a trusted proxy forwarded them (X-Forwarded-For,
    # X-Forwarded-Proto), which granian itself does not read.
    # (uvicorn types ASGI apps more narrowly than Starlette.)
    return ProxyHeadersMiddleware(loaded, trusted_hosts=forwarded_allow_ips)  # type: ignore[arg-type]


def _refuse_a_taken_port(host: str, port: int) -> None:
    # Granian's workers each bind with SO_REUSEPORT: a second server on a port would share
    # it silently, and a port taken by another program ends in a panic's backtrace. A plain
    # bind fails on any listener there (SO_REUSEADDR only passes connections in TIME_WAIT).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            sys.exit(f"user-service: cannot listen on {host} port {port}: {exc.strerror}")


def run(
    settings: Settings, host: str, port: int, workers: int, app: str = "user_service.asgi:app"
) -> None:
    """Serve `app` (module:attribute) until SIGTERM or SIGINT; exits the process (0 when
    stopped by a signal)."""
    _refuse_a_taken_port(host, port)
    server = Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        log_dictconfig=logs.config(settings.log_format),
        log_access=False,  # the app logs each request, with its id (logs.AccessLog)
        respawn_failed_workers=True,
        workers_kill_timeout=settings.app_graceful_timeout,
    )
    server.serve(
        target_loader=functools.partial(_load, app, settings.app_forwarded_allow_ips),
        wrap_loader=False,
    )
    # Stopped. The same signal again (a supervisor repeating it, a second Ctrl-C) must not
    # cut the exit's cleanup short: Python restores the default handlers as it finalizes,
    # and that default kills, but it leaves an ignored signal ignored.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, signal.SIG_IGN)
