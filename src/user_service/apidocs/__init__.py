"""The API's documentation page, /docs (Swagger UI), with everything it loads served from
here: the viewer pinned by uv.lock (the fastapi-offline package's copy), started by a script
of ours, under the pages' CSP (no inline script, nothing from elsewhere, never framed).

/redoc sends browsers to /docs: ReDoc writes inline styles, starts a worker from a blob and
loads its logo from cdn.redoc.ly, none of which that CSP allows."""

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from ..http import PAGE_HEADERS

VENDOR = Path(str(files("fastapi_offline") / "static"))
OURS = Path(__file__).with_name("static")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" href="/docs/vendor/favicon.png">
<link rel="stylesheet" href="/docs/vendor/swagger-ui.css">
</head>
<body data-openapi="{openapi}">
<div id="swagger-ui"></div>
<script src="/docs/vendor/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger.js"></script>
</body>
</html>
"""


def install(app: FastAPI, openapi_url: str) -> None:
    """Serve /docs for the document at `openapi_url`."""
    page = _PAGE.format(title=f"{app.title} API", openapi=openapi_url)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> RedirectResponse:
        return RedirectResponse("/docs", status_code=308)

    app.mount("/docs/vendor", StaticFiles(directory=VENDOR), "api-docs-vendor")
    app.mount("/docs/assets", StaticFiles(directory=OURS), "api-docs")
