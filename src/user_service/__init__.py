"""user-service: a user-management HTTP service on FastAPI and PostgreSQL."""
