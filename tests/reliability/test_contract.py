"""Contract fuzzing: Schemathesis drives a running server from its own OpenAPI schema, in
every phase and mode, with every check, and finds nothing."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

from tests.support import ALL_SCOPES, Server, run_sql

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
SEED = "20261129"  # fixed: every run tries the same requests


def test_schemathesis_finds_no_failure(
    tmp_path: Path, start_server: Callable[..., Server], database_url: str
) -> None:
    # The fuzzer sends forged tokens and signs up on purpose, from one address: the limits
    # must not lock it out.
    env = {
        **os.environ,
        "AUTH_FAILURES_PER_MINUTE": "1000000",
        "AUTH_ADDRESS_LIMIT_PER_MINUTE": "1000000",
    }
    live = start_server("--workers", "2", env=env)
    # The fuzzer deletes users by id with the API token: the people's ids are out of its way.
    run_sql(database_url, "SELECT setval(pg_get_serial_sequence('users', 'id'), 7777777777777)")
    people = {}
    for who in ("PERSON", "SESSIONS", "LOGOUT"):
        email, password = f"{who.lower()}@example.com", "a long passphrase"
        body = {"email": email, "password": password, "name": "Tester"}
        httpx2.post(f"{live.url}/auth/register", json=body).raise_for_status()
        verified = "UPDATE accounts SET email_verified_at = now() WHERE email = '{}' RETURNING 1"
        while not run_sql(database_url, verified.format(email)):
            time.sleep(0.05)  # the account is made just after the answer
        form = {"username": email, "password": password}
        signed_in = httpx2.post(f"{live.url}/auth/login", data=form).raise_for_status()
        people[f"{who}_TOKEN"] = signed_in.json()["access_token"]
    result = subprocess.run(
        [
            SCHEMATHESIS,
            f"--config-file={Path(__file__).with_name('schemathesis.toml')}",
            "run",
            f"{live.url}/openapi.json",
            "--checks=all",
            "--mode=all",
            "--phases=examples,coverage,fuzzing,stateful",
            f"--seed={SEED}",
            "--max-examples=100",
            "--generation-database=none",
            "--no-color",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "API_TOKEN": live.token(*ALL_SCOPES, "webhooks:write"),
            **people,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    code, log = live.stop()
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "No issues found" in report, report
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in report, report  # each phase ran and passed
    assert "Internal Server Error" not in log
    assert code == 0, log
