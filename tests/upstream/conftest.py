"""The upstream sign-in's tests run in the browser tests' Chromium, with their mail server."""

from tests.console.conftest import browser, mail, new_page, page  # noqa: F401 (fixtures)
