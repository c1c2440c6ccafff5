"""Serve an app as `user-service serve --no-migrate` serves the service (same server,
workers, settings and logging), or, with `--granian`, by granian with uvloop instead of
gunicorn + uvicorn (the same settings, JSON logging and multi-process metrics):
`python bench/serve.py MODULE:APP --port P --workers N [--granian]`."""

import argparse
import logging.config

from user_service import logs, server
from user_service.config import get_settings_or_exit

parser = argparse.ArgumentParser()
parser.add_argument("app")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--workers", type=int, required=True)
parser.add_argument("--granian", action="store_true")
args = parser.parse_args()

settings = get_settings_or_exit()
config = logs.config(settings.log_format)
logging.config.dictConfig(config)
server.metrics_directory()  # before the app imports prometheus_client
if args.granian:
    from granian import Granian  # only this way of serving needs it
    from granian.constants import Interfaces, Loops

    Granian(
        args.app,
        port=args.port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        workers=args.workers,
        log_dictconfig=config,
        log_access=False,  # the app's own middleware logs each request, as under gunicorn
    ).serve()
else:
    server.run(settings, "127.0.0.1", args.port, args.workers, app=args.app)
