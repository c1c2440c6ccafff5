"""Migrations: the models match them, they go both ways, and instances may race."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from tests.support import CLI, run_sql

ALEMBIC = str(Path(sys.executable).with_name("alembic"))
ROOT = Path(__file__).parent.parent


def users_table_exists(dsn: str) -> bool:
    return run_sql(dsn, "SELECT to_regclass('users') IS NOT NULL AS found")[0]["found"] is True


def test_models_match_the_migrations() -> None:
    """`alembic check`: no change in the models lacks its migration."""
    result = subprocess.run([ALEMBIC, "check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_downgrade_to_base_then_migrate_back(database_url: str) -> None:
    down = subprocess.run([CLI, "downgrade", "base"], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not users_table_exists(database_url)

    up = subprocess.run([CLI, "migrate"], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    assert users_table_exists(database_url)


def test_alembic_from_the_project_root_upgrades_too(database_url: str) -> None:
    result = subprocess.run([ALEMBIC, "upgrade", "head"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert users_table_exists(database_url)


def test_instances_migrating_at_once_do_not_race(database_url: str) -> None:
    name = f"race_{uuid.uuid4().hex[:8]}"
    fresh = str(make_url(os.environ["DB_DSN"]).set(database=name))
    env = {**os.environ, "DB_DSN": fresh}

    migrators = [
        subprocess.Popen([CLI, "migrate"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outcomes = [(m.communicate(timeout=120)[1], m.returncode) for m in migrators]

    try:
        assert [code for _, code in outcomes] == [0] * 4, outcomes
        log = "".join(output for output, _ in outcomes)
        assert log.count("Running upgrade  -> 0001") == 1
        assert users_table_exists(str(make_url(database_url).set(database=f"{name}_test")))
    finally:
        run_sql(database_url, f'DROP DATABASE IF EXISTS "{name}_test" WITH (FORCE)')


@pytest.fixture
def limited_role(database_url: str) -> Iterator[str]:
    """A database `<name>_test` where a role may create tables but not extensions; the DSN
    (without the suffix, which TESTING adds) that connects as that role."""
    name = f"ext_{uuid.uuid4().hex[:8]}"
    server = make_url(database_url)
    admin = server.set(database="postgres").render_as_string(hide_password=False)
    run_sql(admin, f"CREATE ROLE {name} LOGIN")
    run_sql(admin, f"CREATE DATABASE {name}_test")
    own = server.set(database=f"{name}_test").render_as_string(hide_password=False)
    run_sql(own, f"GRANT CREATE ON SCHEMA public TO {name}")
    try:
        yield server.set(username=name, database=name).render_as_string(hide_password=False)
    finally:
        run_sql(admin, f"DROP DATABASE {name}_test WITH (FORCE)")
        run_sql(admin, f"DROP ROLE {name}")


def test_an_extension_the_role_may_not_create_is_named_with_the_fix(limited_role: str) -> None:
    result = subprocess.run(
        [CLI, "migrate"],
        env={**os.environ, "DB_DSN": limited_role},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("user-service: cannot use the database: the schema needs the ")
    assert "extension citext" in last
    assert 'run "CREATE EXTENSION citext;"' in last
    assert "Traceback" not in result.stderr


def test_existing_addresses_get_the_key_they_are_compared_by(database_url: str) -> None:
    down = subprocess.run([CLI, "downgrade", "0004"], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    run_sql(
        database_url,
        "WITH u AS (INSERT INTO users (nickname) SELECT 'x' FROM generate_series(1, 3) "
        "RETURNING id) INSERT INTO accounts (user_id, email, password_hash) "
        "SELECT id, (ARRAY['Alice@Example.COM', 'bob@MÜNCHEN.de', 'carol@xn--mnchen-3ya.de'])"
        "[row_number() OVER (ORDER BY id)], '' FROM u",
    )
    up = subprocess.run([CLI, "migrate"], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    rows = run_sql(database_url, "SELECT email, email_key FROM accounts ORDER BY user_id")
    assert [(row["email"], row["email_key"]) for row in rows] == [
        ("Alice@Example.COM", "alice@example.com"),  # shown as given, compared lower-cased
        ("bob@MÜNCHEN.de", "bob@xn--mnchen-3ya.de"),  # the domain in IDNA's ASCII form
        ("carol@xn--mnchen-3ya.de", "carol@xn--mnchen-3ya.de"),
    ]
