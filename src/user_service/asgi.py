"""The ASGI entry point: `uvicorn user_service.asgi:app`."""

from .main import get_app

app = get_app()
