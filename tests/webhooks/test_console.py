"""The console's Webhooks page: subscribe (the secret shown once), see deliveries, retry;
and an operator's changes to an account send their events."""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.accounts.conftest import signed_up, smtp  # noqa: F401
from tests.console.test_operators import operator, post
from tests.smtp import SmtpServer
from tests.webhooks.receiver import Receiver
from user_service.main import get_app


@pytest.fixture
def site(smtp: SmtpServer, delivering: None) -> Iterator[TestClient]:  # noqa: F811
    """A browser on the app in this process (which delivers webhooks)."""
    with TestClient(get_app(), follow_redirects=False) as client:
        yield client


def test_subscribe_see_deliveries_and_retry(
    site: TestClient,
    smtp: SmtpServer,  # noqa: F811
    receiver: Receiver,
) -> None:
    operator(site, smtp, "users:read", "users:write", "webhooks:write")
    assert 'href="/console/webhooks"' in site.get("/console").text
    refused = post(site, "/console/webhooks", url="http://10.0.0.1/", events="user.created")
    assert refused.status_code == 422
    assert "private address" in refused.text

    answer = post(
        site,
        "/console/webhooks",
        url=receiver.url,
        events=["user.created", "account.disabled", "account.enabled"],
        description="CRM",
    )
    assert answer.status_code == 201, answer.text
    secret = re.search(r'class="secret" value="(whsec_[^"]+)"', answer.text)
    assert secret
    listed = site.get("/console/webhooks").text
    assert receiver.url in listed
    assert "CRM" in listed
    assert secret[1] not in listed

    # An operator disables and enables a person's account: each sends its event.
    signed_up(site, smtp, "pat@example.com", "Pat")
    users = re.findall(r'href="/console/users/(\d+)"', site.get("/console/users").text)
    person = max(map(int, users))
    for action in ("disable", "enable"):
        assert post(site, f"/console/users/{person}/{action}").status_code == 303
    received = receiver.wait_count(3)
    assert [r.payload["type"] for r in received] == [
        "user.created",
        "account.disabled",
        "account.enabled",
    ]
    assert all(r.verified(secret[1])["data"]["id"] == person for r in received)

    receiver.answers = [500] * 1000  # failing until told otherwise
    post(site, f"/console/users/{person}/disable")
    receiver.wait_count(4)
    page = site.get("/console/webhooks").text
    assert "pending" in page
    assert "500" in page
    retry = re.search(r'action="(/console/webhooks/\d+/deliveries/msg_\w+/retry)"', page)
    assert retry
    receiver.answers = []
    assert post(site, retry[1]).status_code == 303
    last = receiver.wait_for(lambda got: got[-1].status == 200)[-1]
    assert last.payload["type"] == "account.disabled"


def test_the_page_needs_webhooks_write(site: TestClient, smtp: SmtpServer) -> None:  # noqa: F811
    operator(site, smtp, "users:read")
    assert site.get("/console/webhooks").status_code == 403
    assert 'href="/console/webhooks"' not in site.get("/console").text
    assert post(site, "/console/webhooks", url="https://example.com/").status_code == 403
