"""The production server: gunicorn supervising uvicorn workers (a dead worker is replaced;
SIGTERM drains in-flight requests within APP_GRACEFUL_TIMEOUT, then exits 0)."""

import asyncio
import importlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker as GunicornWorker
from starlette.types import ASGIApp
from uvicorn_worker import UvicornWorker

from . import logs
from .config import Settings


class Worker(UvicornWorker):  # type: ignore[misc]
    # Requests are logged by our middleware, with their ids; no version banner.
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "access_log": False,
        "server_header": False,
    }

    def _install_sigquit_handler(self) -> None:
        # The master's quick shutdown (on SIGINT) sends workers SIGQUIT, which uvicorn would
        # ignore until the graceful timeout's SIGKILL: drain and stop as on SIGTERM instead.
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGQUIT, os.kill, os.getpid(), signal.SIGTERM
        )


class _Application(BaseApplication):
    def __init__(self, options: dict[str, Any], app: str) -> None:
        self.options = options
        self.app = app
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> ASGIApp:
        # In each worker, after the fork: its own app and pool.
        module, _, name = self.app.partition(":")
        app: ASGIApp = getattr(importlib.import_module(module), name)
        return app


def _forget_worker(arbiter: Arbiter, worker: GunicornWorker) -> None:
    from prometheus_client import multiprocess  # see metrics_directory

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


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


def run(
    settings: Settings, host: str, port: int, workers: int, app: str = "user_service.asgi:app"
) -> None:
    """Serve `app` (module:attribute) until SIGTERM or SIGINT; exits the process (0 when
    stopped by a signal)."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    _Application(
        {
            "bind": bind,
            "workers": workers,
            "worker_class": f"{Worker.__module__}.{Worker.__qualname__}",
            "graceful_timeout": settings.app_graceful_timeout,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "logconfig_dict": logs.config(settings.log_format),
            "child_exit": _forget_worker,
            "proc_name": "user-service",
            "control_socket_disable": True,  # no runtime control; it wants a writable $HOME
            "forwarded_allow_ips": settings.app_forwarded_allow_ips,
        },
        app,
    ).run()
