"""The layout keeps its promise: routes and pages turn HTTP into calls on the accounts
service, and never reach into a repository themselves."""

import ast
from pathlib import Path

SOURCE = Path(__file__).parent.parent / "src" / "user_service"
ENTRY_POINTS = sorted(
    [
        *SOURCE.glob("*/router.py"),
        *SOURCE.glob("*/pages.py"),  # the provider's, the upstream sign-in's
        *(SOURCE / "console").glob("*.py"),
    ]
)


def _imported(path: Path) -> set[str]:
    """Every module and name `path` imports, as written."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_route_or_page_imports_a_repository_or_the_pool() -> None:
    assert len(ENTRY_POINTS) >= 9  # the routers and pages of every module; the console's
    for path in ENTRY_POINTS:
        reaching = {
            name for name in _imported(path) if "repository" in name or name in ("Db", "get_db")
        }
        assert not reaching, f"{path.relative_to(SOURCE)} imports {sorted(reaching)}"
