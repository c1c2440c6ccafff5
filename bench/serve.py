"""Serve an app as `user-service serve --no-migrate` serves the service (same server,
workers, settings, logging and multi-process metrics):
`python bench/serve.py MODULE:APP --port P --workers N`."""

import argparse

from user_service import server
from user_service.config import get_settings_or_exit

parser = argparse.ArgumentParser()
parser.add_argument("app")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--workers", type=int, required=True)
args = parser.parse_args()

settings = get_settings_or_exit()
server.metrics_directory()  # before the app imports prometheus_client
server.run(settings, "127.0.0.1", args.port, args.workers, app=args.app)
