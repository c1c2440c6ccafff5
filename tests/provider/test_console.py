"""The console's Clients page through HTTP, as a browser without JavaScript uses it."""

import html
import re
import subprocess

from fastapi.testclient import TestClient

from tests.provider.conftest import PERSON, REDIRECT, csrf, signed_in
from tests.smtp import SmtpServer
from tests.support import CLI


def test_an_operator_registers_lists_rotates_and_deletes_clients(
    site: TestClient, smtp: SmtpServer
) -> None:
    signed_in(site, smtp)
    assert site.get("/console/clients").status_code == 403  # not an operator yet
    granted = subprocess.run(
        [CLI, "accounts", "grant", PERSON, "clients:write", "users:read"],
        capture_output=True,
        check=False,
    )
    assert granted.returncode == 0
    page = site.get("/console/clients")
    assert page.status_code == 200
    assert 'value="users:read"' in page.text
    assert 'value="users:write"' not in page.text  # not the operator's to give

    form = {
        "csrf": csrf(site, page.text),
        "name": "Team Wiki",
        "redirect_uris": f"{REDIRECT}\n",
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "email", "users:write"],
    }
    beyond = site.post("/console/clients", data=form)
    assert beyond.status_code == 422
    assert "you lack users:write" in beyond.text

    made = site.post("/console/clients", data={**form, "scopes": ["openid", "users:read"]})
    assert made.status_code == 201
    secret = re.search(r'class="secret" value="([^"]+)"', made.text)
    client_id = re.search(r'Client id <input value="([^"]+)"', made.text)
    assert secret
    assert client_id
    listed = site.get("/console/clients").text
    assert "Team Wiki" in listed
    assert client_id[1] in listed
    assert secret[1] not in listed

    rotated = site.post(
        f"/console/clients/{client_id[1]}/rotate-secret", data={"csrf": csrf(site, listed)}
    )
    new_secret = re.search(r'class="secret" value="([^"]+)"', rotated.text)
    assert new_secret
    assert new_secret[1] != secret[1]
    grant = {"grant_type": "client_credentials"}
    auth = (client_id[1], html.unescape(new_secret[1]))
    assert site.post("/oauth/token", data=grant, auth=auth).json()["error"] == "unauthorized_client"

    deleted = site.post(f"/console/clients/{client_id[1]}/delete", data={"csrf": csrf(site)})
    assert deleted.status_code == 303
    assert client_id[1] not in site.get("/console/clients").text
    assert site.post("/oauth/token", data=grant, auth=auth).json()["error"] == "invalid_client"
