"""Serve an app with granian as `user-service serve --no-migrate` serves it with gunicorn:
the same settings, JSON logging, multi-process metrics and worker count:
`python bench/serve_granian.py MODULE:APP --port P --workers N`."""

import argparse
import logging.config

from granian import Granian
from granian.constants import Interfaces, Loops

from user_service import logs, server
from user_service.config import get_settings_or_exit

parser = argparse.ArgumentParser()
parser.add_argument("app")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--workers", type=int, required=True)
args = parser.parse_args()

settings = get_settings_or_exit()
config = logs.config(settings.log_format)
logging.config.dictConfig(config)
server.metrics_directory()  # before the app imports prometheus_client
Granian(
    args.app,
    port=args.port,
    interface=Interfaces.ASGI,
    loop=Loops.uvloop,
    workers=args.workers,
    log_dictconfig=config,
    log_access=False,  # the app's own middleware logs each request, as under gunicorn
).serve()
