"""Contract fuzzing: Schemathesis drives a running server from its own OpenAPI schema, in
every phase and mode, with every check, and finds nothing."""

import os
import subprocess
import sys
from pathlib import Path

from tests.support import Server

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
SEED = "20261129"  # fixed: every run tries the same requests


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    # The fuzzer sends forged tokens on purpose; the failure limit must not lock it out.
    env = {**os.environ, "AUTH_FAILURES_PER_MINUTE": "1000000"}
    live = Server("--workers", "2", env=env)
    try:
        result = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{live.url}/openapi.json",
                "--checks=all",
                "--mode=all",
                "--phases=examples,coverage,fuzzing,stateful",
                f"--seed={SEED}",
                "--max-examples=100",
                "--generation-database=none",
                "--no-color",
                "--header",
                f"Authorization: Bearer {live.token()}",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        code, log = live.stop()
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "No issues found" in report, report
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in report, report  # each phase ran and passed
    assert "Internal Server Error" not in log
    assert code == 0, log
