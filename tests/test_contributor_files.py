"""The files contributors run without us: the pre-commit hooks check what `make lint` and
`make typecheck` check, and the forge's workflow runs the passes `.ci/run` runs (it cannot
run here, so it is read)."""

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent.parent


def _load(path: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((ROOT / path).read_text())
    return document


def _recipe(target: str) -> list[str]:
    """The commands of a Makefile target, `$(UV) run --no-sync` taken off."""
    makefile = (ROOT / "Makefile").read_text()
    body = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert body, target
    return [line.strip().removeprefix("$(UV) run --no-sync ") for line in body[1].splitlines()]


def test_pre_commit_runs_the_checks_of_make_lint_and_typecheck() -> None:
    [local] = _load(".pre-commit-config.yaml")["repos"]
    assert local["repo"] == "local"  # nothing fetched: the locked tools of .venv
    entries = [hook["entry"] for hook in local["hooks"]]
    assert all(entry.startswith(".venv/bin/") for entry in entries)
    tools = [entry.removeprefix(".venv/bin/").replace(" --force-exclude", "") for entry in entries]
    checks = [command.removesuffix(" .") for command in _recipe("lint") + _recipe("typecheck")]
    assert tools == checks
    [mypy] = [hook for hook in local["hooks"] if hook["id"] == "mypy"]
    assert mypy["pass_filenames"] is False  # mypy's own configuration says what it checks


def _ci_run_passes() -> set[tuple[str, bool]]:
    """(Python, whether on a server) of each `make test` in .ci/run."""
    passes = set()
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        if line.endswith("make test"):
            python = re.search(r"UV_PYTHON=(\S+)", line)
            assert python, line
            passes.add((python[1], "DB_DSN=" in line))
    return passes


def test_the_workflow_runs_the_passes_of_ci_run() -> None:
    workflow = _load(".github/workflows/ci.yml")
    assert {"push", "pull_request"} <= set(workflow[True])  # YAML reads `on` as true
    passes = set()
    for job in workflow["jobs"].values():
        assert [step.get("run") for step in job["steps"]][-1] == "make test"
        python = job["env"]["UV_PYTHON"]
        assert job["container"] == f"python:{python.removeprefix('python')}-bookworm"
        dsn = job["env"].get("DB_DSN")
        if dsn is not None:
            [(name, service)] = job["services"].items()
            assert re.fullmatch(rf"postgresql://postgres@{name}:5432/user_service", dsn)
            assert service["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"  # as on 127.0.0.1
        passes.add((python, dsn is not None))
    assert passes == _ci_run_passes() == {("python3.13", False), ("python3.11", True)}
