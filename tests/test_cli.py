"""The `user-service` command as operators use it."""

import os
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import CLI, Server, without_database


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DB_PORT": "abc"}, "DB_PORT"),
        ({"DB_DSN": "not a url"}, "DB_DSN"),
        ({"DB_DSN": "mysql://root@localhost/db"}, "DB_DSN"),
        ({"DB_POOL_MAX_SIZE": "0"}, "DB_POOL_MAX_SIZE"),
        ({"DB_POOL_MIN_SIZE": "20", "DB_POOL_MAX_SIZE": "4"}, "DB_POOL_MAX_SIZE"),
        ({"DB_SSL": "sometimes"}, "DB_SSL"),
        ({"APP_PORT": "http"}, "APP_PORT"),
    ],
)
def test_bad_setting_stops_with_one_line_naming_it(env: dict[str, str], variable: str) -> None:
    result = run_cli("serve", env={**os.environ, **env})

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("user-service: invalid configuration:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert variable in result.stderr


@pytest.mark.parametrize("command", [("serve",), ("tokens", "list")])
def test_a_missing_secret_key_is_named_as_the_problem(command: tuple[str, ...]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUTH_SECRET_KEY"}  # DB_DSN is set
    result = run_cli(*command, env=env)

    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("user-service: AUTH_SECRET_KEY is not set: give every instance")
    assert "cannot use the database" not in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_retried_then_reported_without_the_password() -> None:
    env = {
        **without_database(),
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "1",  # nothing listens there
        "DB_USER": "someone",
        "DB_PASSWORD": "hunter2-secret",
        "DB_RETRY_LIMIT": "3",
        "DB_RETRY_INTERVAL": "0.1",
    }
    result = run_cli("migrate", env=env)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for attempt in (1, 2, 3):
        assert f"(attempt {attempt} of 3)" in result.stderr
    assert "postgresql://someone:***@127.0.0.1:1/user_service_test" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert (
        result.stderr.strip().splitlines()[-1].startswith("user-service: cannot use the database")
    )


def test_dsn_in_dotenv_wins_over_db_host_in_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DB_DSN={os.environ['DB_DSN']}\n")
    env = {**without_database(), "DB_HOST": "127.0.0.1", "DB_PORT": "1"}

    result = run_cli("migrate", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DB_PORT=not-a-port\n")
    env = {**without_database(), "DB_HOST": "127.0.0.1", "DB_PORT": "1", "DB_RETRY_LIMIT": "1"}

    result = run_cli("migrate", env=env, cwd=tmp_path)

    assert "invalid configuration" not in result.stderr
    assert "127.0.0.1:1" in result.stderr


def test_embedded_database_keeps_data_across_restarts(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    data = tmp_path / "data"
    env = {**without_database(), "DB_EMBEDDED_DIR": str(data)}

    first = start_server(env=env)
    admin = tmp_path / "admin.token"  # beside the data, made on first start
    with first.client() as client:
        user = client.post("/users", json={"name": "survivor"}).json()
    code, log = first.stop()
    assert code == 0, log
    assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    token = admin.read_text().strip()
    assert f'curl -H \\"Authorization: Bearer $(cat {admin})\\" {first.url}/users' in log
    assert f"Embedded PostgreSQL is running with its data in {data}" in log, log
    assert f"Console for operators: {first.url}/console" in log
    assert "set DB_DSN or DB_HOST" in log
    assert not (data / "postmaster.pid").exists(), "the embedded server outlived the service"

    second = start_server(env=env)
    with second.client() as client:
        response = client.get(f"/users/{user['id']}")
    code, log = second.stop()
    assert response.json() == {
        "id": user["id"],
        "nickname": "survivor",
        "email": None,
        "email_verified": False,
        "created_at": response.json()["created_at"],
    }
    assert admin.read_text().strip() == token  # still live: kept
    assert code == 0, log
    assert not (data / "postmaster.pid").exists()


def test_ctrl_c_stops_cleanly_too(start_server: Callable[..., Server]) -> None:
    live = start_server()
    live.wait_for_workers()
    live.process.send_signal(signal.SIGINT)
    code, output = live.wait()
    assert code == 0, output
    assert "Granian shutdown completed" in output
    assert "Killing worker" not in output  # each stopped in its own time


def test_db_echo_logs_each_statement(start_server: Callable[..., Server]) -> None:
    live = start_server(env={**os.environ, "DB_ECHO": "true"})
    with live.client() as client:
        client.get("/users/1")
    code, log = live.stop()
    assert code == 0, log
    assert "SQL SELECT u.id, u.nickname, a.email" in log


def test_help_lists_the_commands() -> None:
    result = run_cli("--help", env=dict(os.environ))
    assert result.returncode == 0
    for command in ("serve", "migrate", "downgrade"):
        assert command in result.stdout
