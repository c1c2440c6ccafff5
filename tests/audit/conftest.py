"""The accounts tests' fixtures: people make the events the audit log records."""

from tests.accounts.conftest import app, smtp

__all__ = ["app", "smtp"]
