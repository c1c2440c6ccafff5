"""The embedded PostgreSQL, as `make run` uses it."""

from pathlib import Path

from tests.support import without_database
from tests.test_cli import run_cli


def test_data_of_another_major_version_is_reported_and_left_as_it_is(tmp_path: Path) -> None:
    data = tmp_path / "postgres"  # as pgserver's PostgreSQL 16 left it
    (data / "base").mkdir(parents=True)
    (data / "PG_VERSION").write_text("16\n")
    (data / "base" / "1").write_text("a table")
    before = sorted((path, path.read_bytes()) for path in data.rglob("*") if path.is_file())

    result = run_cli("serve", env={**without_database(), "DB_EMBEDDED_DIR": str(data)})

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("user-service: cannot use the database:")
    assert f"{data} holds a PostgreSQL 16 database" in message
    assert "the embedded server is PostgreSQL 18" in message
    assert f"mv {data} {data}-16" in message
    assert "pg_dumpall" in message
    after = sorted((path, path.read_bytes()) for path in data.rglob("*") if path.is_file())
    assert after == before, "the old data was touched"
