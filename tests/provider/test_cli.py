"""`user-service clients`: what an operator does from the command line, seen through the
provider's own endpoints."""

import json
import subprocess

from fastapi.testclient import TestClient

from tests.provider.conftest import (
    REDIRECT,
    authorize,
    exchange,
    pkce,
    returned,
    signed_in,
)
from tests.smtp import SmtpServer
from tests.support import CLI, run_sql


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "clients", *args], capture_output=True, text=True, check=False)


def test_an_operators_first_party_client_skips_consent_and_its_secret_rotates(
    site: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    made = cli(
        "create",
        "--name",
        "Our Wiki",
        "--redirect-uri",
        REDIRECT,
        "--first-party",
        "--grant-types",
        "authorization_code,client_credentials",
        "--scopes",
        "openid,users:read",
    )
    assert made.returncode == 0, made.stderr
    client = json.loads(made.stdout)
    assert client["client_name"] == "Our Wiki"
    listed = cli("list")
    assert client["client_id"] in listed.stdout
    assert "first-party" in listed.stdout
    assert client["client_secret"] not in listed.stdout + listed.stderr

    signed_in(site, smtp)
    verifier, challenge = pkce()
    code = returned(authorize(site, client, challenge, scope="openid"))["code"]  # no page
    tokens = exchange(site, client, code, verifier).json()
    assert "id_token" in tokens

    rotated = cli("rotate-secret", client["client_id"])
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip()
    form = {"grant_type": "client_credentials"}
    old = site.post("/oauth/token", data=form, auth=(client["client_id"], client["client_secret"]))
    assert old.status_code == 401
    new = site.post("/oauth/token", data=form, auth=(client["client_id"], new_secret))
    assert new.status_code == 200

    assert cli("delete", client["client_id"]).returncode == 0
    assert (
        site.get(
            "/users", headers={"Authorization": f"Bearer {new.json()['access_token']}"}
        ).status_code
        == 401
    )
    assert (
        site.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ).status_code
        == 401
    )
    assert cli("delete", client["client_id"]).returncode != 0
    kinds = {r["kind"] for r in run_sql(database_url, "SELECT kind FROM audit_events")}
    assert {"client.registered", "client.secret_rotated", "client.deleted"} <= kinds


def test_bad_metadata_is_refused_in_one_line() -> None:
    refused = cli("create", "--name", "X", "--redirect-uri", "http://app.example/cb")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1] == (
        "user-service: invalid_redirect_uri: http://app.example/cb is neither https nor http "
        "on a loopback address"
    )
    unknown = cli("create", "--name", "X", "--redirect-uri", REDIRECT, "--scopes", "openid,fly")
    assert "unknown scopes: fly" in unknown.stderr
