"""The Dockerfile read as Docker reads it, enough for the tests to check and to replay it."""

import json
import re
import shlex
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Stage:
    name: str | None
    instructions: list[tuple[str, str]]  # (keyword in upper case, its arguments)

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for word, arguments in self.instructions if word == keyword]

    def env(self) -> dict[str, str]:
        return {key: value for env in self.arguments("ENV") for key, value in settings(env).items()}

    def shell_commands(self) -> list[str]:
        return [shell_command(run) for run in self.arguments("RUN")]


def stages() -> list[Stage]:
    """The build stages in order; what precedes the first FROM (global ARGs) is left out."""
    lines = DOCKERFILE.read_text().splitlines()
    lines = [line for line in lines if not line.lstrip().startswith("#")]
    result: list[Stage] = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = arguments.split()
            result.append(Stage(words[-1] if len(words) == 3 else None, []))
        elif keyword and result:
            result[-1].instructions.append((keyword.upper(), arguments.strip()))
    return result


def settings(env: str) -> dict[str, str]:
    """One ENV instruction's settings, written `KEY=value` (the legacy `KEY value` is refused)."""
    pairs = [word.split("=", 1) for word in shlex.split(env)]
    assert all(len(pair) == 2 for pair in pairs), f"ENV {env}: write KEY=value"
    return dict(pairs)


def shell_command(run: str) -> str:
    """A RUN instruction's command, without RUN's own options (--mount=...)."""
    return re.sub(r"^(--\S+\s+)*", "", run)


def exec_form(arguments: str) -> list[str]:
    """The JSON argument list of CMD, or of HEALTHCHECK once its options are dropped."""
    command = re.sub(r"^(--\S+\s+)*(CMD\s+)?", "", arguments)
    argv: list[str] = json.loads(command)
    return argv


def ignored_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    patterns = [line.strip("/") for line in lines if line and not line.startswith("#")]
    assert not any(pattern.startswith("!") for pattern in patterns), "exceptions not replayed"
    return patterns


def is_ignored(relative: str) -> bool:
    """Whether Docker leaves this context path (relative, posix) out of the build."""
    return any(
        fnmatch(relative, pattern) or fnmatch(relative, pattern.removeprefix("**/"))
        for pattern in ignored_patterns()
    )
