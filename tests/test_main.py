"""The application factory: feature modules come from entry points; plumbing errors map
to problems."""

import textwrap
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from tests.support import bearer
from user_service import main
from user_service.main import MODULES_GROUP, get_app


def test_module_registered_only_by_entry_point_is_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    (tmp_path / "greetings_plugin.py").write_text(
        textwrap.dedent(
            """
            from fastapi import APIRouter

            router = APIRouter()

            @router.get("/greetings")
            async def greet() -> dict[str, str]:
                return {"hello": "world"}

            @router.get("/broken")
            async def broken() -> None:
                raise RuntimeError("SELECT secret FROM internals")

            def init_app(app):
                app.include_router(router)
            """
        )
    )
    dist_info = tmp_path / "greetings_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: greetings-plugin\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[user_service.modules]\ngreetings = greetings_plugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    with TestClient(get_app(), raise_server_exceptions=False, headers=bearer(token)) as client:
        assert client.get("/greetings").json() == {"hello": "world"}
        assert client.post("/users", json={"name": "still here"}).status_code == 201

        broken = client.get("/broken")
        # An internal error is a plain 500 problem: no message, SQL or traceback leaks out.
        assert broken.status_code == 500
        assert broken.headers["content-type"] == "application/problem+json"
        assert broken.json()["detail"] == "An unexpected error occurred."
        assert "secret" not in broken.text
        assert "Traceback" not in broken.text


@pytest.mark.usefixtures("unreachable_database")
def test_unreachable_database_answers_503_with_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_PUBLIC", "true")
    with TestClient(get_app()) as client:
        # Checking the token needs the database too.
        response = client.get("/users/1", headers=bearer("ust_unverifiable"))
        metrics = client.get("/metrics").text

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert "127.0.0.1" not in response.text
    assert 'db_errors_total{error="ConnectionRefusedError"}' in metrics


def test_a_fixed_path_wins_over_a_path_parameter_whichever_module_loads_first(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    # Modules load by name: renamed, users (and its /users/{user_id}) loads before accounts
    # (and its /users/me).
    found = entry_points(group=MODULES_GROUP)
    renamed = [
        EntryPoint(("0" if ep.name == "users" else "1") + ep.name, ep.value, ep.group)
        for ep in found
    ]
    monkeypatch.setattr(main, "entry_points", lambda group: renamed)
    with TestClient(get_app(), headers=bearer(token)) as client:
        me = client.get("/users/me")
        renamed_me = client.patch("/users/me", json={"name": "x"})
    # The accounts' route answered: an API token is not a person. (/users/{user_id} would
    # have said 422: "me" is not an id.)
    assert me.status_code == 403
    assert me.json()["type"] == "/problems/not-a-person"
    assert renamed_me.json()["type"] == "/problems/not-a-person"


def test_routes_mounted_first_are_matched_first_and_must_be_fixed_paths() -> None:
    app = FastAPI()
    later, early, parametrised = APIRouter(), APIRouter(), APIRouter()

    @later.get("/thing")
    async def later_thing() -> str:
        return "later"

    @early.get("/thing")
    async def early_thing() -> str:
        return "early"

    @parametrised.get("/things/{thing_id}")
    async def a_thing(thing_id: int) -> int:
        return thing_id

    main.mount(app, later)
    main.mount(app, early, first=True)
    with TestClient(app) as client:
        assert client.get("/thing").json() == "early"
    with pytest.raises(ValueError, match="only routes without path parameters can go first"):
        main.mount(app, parametrised, first=True)
