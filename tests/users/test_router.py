import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.support import Server, bearer, issue_token, run_sql

MAX_ID = 2**63 - 1
NO_ACCOUNT = {"email": None, "email_verified": False}  # what admins read of a user without one


def create(client: TestClient, name: str) -> dict[str, object]:
    response = client.post("/users", json={"name": name})
    assert response.status_code == 201, response.text
    user: dict[str, object] = response.json()
    return user


def assert_problem(response: httpx2.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


def test_crud(server: Server) -> None:
    """The tutorial's test, against a running server."""
    with server.client() as client:
        nickname = str(uuid.uuid4())
        r = client.post("/users", json={"name": nickname})
        r.raise_for_status()

        url = f"/users/{r.json()['id']}"
        assert client.get(url).json()["nickname"] == nickname

        client.delete(url).raise_for_status()
        assert client.get(url).status_code == 404


def test_create_answers_201_with_location(client: TestClient) -> None:
    response = client.post("/users", json={"name": "alice"})

    assert response.status_code == 201
    user = response.json()
    assert user == {"id": user["id"], "nickname": "alice"}
    assert response.headers["location"] == f"/users/{user['id']}"
    read = client.get(response.headers["location"]).json()
    assert read == {**user, **NO_ACCOUNT, "created_at": read["created_at"]}
    created_at = datetime.fromisoformat(read["created_at"])  # ISO 8601, with its zone
    assert abs(datetime.now(UTC) - created_at) < timedelta(minutes=1)


def test_create_gives_each_user_its_own_id(client: TestClient) -> None:
    ids = {create(client, f"user {n}")["id"] for n in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    "name",
    ["x", "x" * 255, "Zoë 🚀 日本語", " padded ", "\u200bzero width", 'O\'Brien "quoted" -- ;'],
)
def test_name_is_stored_exactly(client: TestClient, name: str) -> None:
    user = create(client, name)
    assert client.get(f"/users/{user['id']}").json()["nickname"] == name


def test_get_missing_user_is_404(client: TestClient) -> None:
    body = assert_problem(client.get("/users/12345"), 404)
    assert body["detail"] == "User 12345 does not exist."


def test_largest_id_is_valid_and_absent(client: TestClient) -> None:
    assert_problem(client.get(f"/users/{MAX_ID}"), 404)


@pytest.mark.parametrize("user_id", ["0", "-1", str(MAX_ID + 1), "abc", "1.5", "1e3", "%00"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_invalid_id_is_422_naming_it(client: TestClient, method: str, user_id: str) -> None:
    response = client.request(method, f"/users/{user_id}", json={"name": "x"})
    body = assert_problem(response, 422)
    assert ["path", "user_id"] in [error["loc"] for error in body["errors"]]  # type: ignore[attr-defined]


def test_patch_renames(client: TestClient) -> None:
    user = create(client, "before")

    response = client.patch(f"/users/{user['id']}", json={"name": "after"})

    assert response.status_code == 200
    assert response.json() == {"id": user["id"], "nickname": "after"}
    assert client.get(f"/users/{user['id']}").json()["nickname"] == "after"


def test_patch_missing_user_is_404(client: TestClient) -> None:
    assert_problem(client.patch("/users/999", json={"name": "x"}), 404)


def test_delete_answers_the_id_then_user_is_gone(client: TestClient) -> None:
    user = create(client, "doomed")

    response = client.delete(f"/users/{user['id']}")

    assert response.status_code == 200
    assert response.json() == {"id": user["id"]}
    assert_problem(client.get(f"/users/{user['id']}"), 404)


def test_delete_twice_is_404(client: TestClient) -> None:
    user = create(client, "once")
    client.delete(f"/users/{user['id']}")
    assert_problem(client.delete(f"/users/{user['id']}"), 404)


def test_concurrent_deletes_of_one_user_give_exactly_one_200(server: Server) -> None:
    async def race() -> list[int]:
        async with server.async_client() as client:
            user = (await client.post("/users", json={"name": "contested"})).json()
            responses = await asyncio.gather(
                *(client.delete(f"/users/{user['id']}") for _ in range(20))
            )
            return sorted(response.status_code for response in responses)

    assert asyncio.run(race()) == [200] + [404] * 19


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "nul\u0000byte"}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "bell\u0007"}, "name"),
        ({"name": "c1\u0085control"}, "name"),
        ({"name": 42}, "name"),
        ({"name": None}, "name"),
        ({"name": ["a"]}, "name"),
        ({"name": "ok", "id": 7}, "id"),
        ({"name": "ok", "nickname": "sneaky"}, "nickname"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_invalid_body_is_422_naming_the_field(
    client: TestClient, method: str, body: dict[str, object], field: str
) -> None:
    user = create(client, "target")
    url = "/users" if method == "POST" else f"/users/{user['id']}"

    problem = assert_problem(client.request(method, url, json=body), 422)

    assert ["body", field] in [error["loc"] for error in problem["errors"]]  # type: ignore[attr-defined]
    assert field in str(problem["detail"])
    assert client.get(f"/users/{user['id']}").json()["nickname"] == "target"


def test_lone_surrogate_is_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/users", content=b'{"name": "\\ud800"}', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


def test_a_client_cannot_choose_the_id(client: TestClient) -> None:
    assert_problem(client.post("/users", json={"name": "x", "id": 1}), 422)
    assert client.get("/users").json()["items"] == []


@pytest.mark.parametrize("payload", [b"{", b"not json", b'{"name": "x"', b"[1, 2]", b"null", b""])
def test_malformed_json_is_422(client: TestClient, payload: bytes) -> None:
    response = client.post("/users", content=payload, headers={"content-type": "application/json"})
    assert_problem(response, 422)


def test_non_json_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/users", content=json.dumps({"name": "x"}), headers={"content-type": "text/plain"}
    )
    body = assert_problem(response, 415)
    assert "application/json" in str(body["detail"])


def test_json_with_charset_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/users",
        content=json.dumps({"name": "x"}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


def test_body_over_64_kib_is_413(client: TestClient) -> None:
    body = json.dumps({"name": "x" * (64 * 1024)})
    assert_problem(
        client.post("/users", content=body, headers={"content-type": "application/json"}), 413
    )
    assert client.get("/users").json()["items"] == []


def test_streamed_body_over_64_kib_is_413(client: TestClient) -> None:
    def chunks() -> object:
        yield b'{"name": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = client.post("/users", content=chunks(), headers={"content-type": "application/json"})  # type: ignore[arg-type]
    assert_problem(response, 413)


def test_unsupported_method_is_405_with_allow(client: TestClient) -> None:
    response = client.put("/users/1", json={"name": "x"})
    body = assert_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert body["detail"] == "PUT is not allowed here; use DELETE, GET, PATCH."


def test_unknown_path_is_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)


def test_list_is_empty_at_first(client: TestClient) -> None:
    assert client.get("/users").json() == {"items": [], "next_cursor": None}


def test_list_pages_through_every_user_once_in_order(client: TestClient) -> None:
    ids = [create(client, f"u{n}")["id"] for n in range(7)]
    client.delete(f"/users/{ids[3]}")
    expected = ids[:3] + ids[4:]

    seen, cursor, pages = [], 0, 0
    while cursor is not None:
        page = client.get("/users", params={"limit": 2, "after": cursor}).json()
        seen += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
        pages += 1

    assert seen == expected
    assert pages == 3


def test_list_defaults_to_50(client: TestClient) -> None:
    for n in range(51):
        create(client, f"u{n}")
    page = client.get("/users").json()
    assert len(page["items"]) == 50
    assert page["next_cursor"] == page["items"][-1]["id"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": -1}, "after"),
        ({"after": MAX_ID + 1}, "after"),
    ],
)
def test_list_rejects_bad_paging(
    client: TestClient, params: dict[str, int | str], field: str
) -> None:
    body = assert_problem(client.get("/users", params=params), 422)
    assert ["query", field] in [error["loc"] for error in body["errors"]]  # type: ignore[attr-defined]


def test_openapi_documents_every_status(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    documented = {
        (path, method): set(operation["responses"])
        for path, operations in paths.items()
        if path.startswith("/users") and not path.startswith("/users/me")  # me: accounts'
        for method, operation in operations.items()
    }
    auth = {"401", "403", "429"}
    assert documented == {
        ("/users", "post"): {"201", "400", "413", "415", "422", "503", *auth},
        ("/users", "get"): {"200", "422", "503", *auth},
        ("/users/{user_id}", "get"): {"200", "404", "422", "503", *auth},
        ("/users/{user_id}", "patch"): {"200", "400", "404", "413", "415", "422", "503", *auth},
        ("/users/{user_id}", "delete"): {"200", "404", "422", "503", *auth},
    }
    security = {
        (path, method): operation["security"]
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "security" in operation and (path, method) in documented
    }
    assert security == {
        ("/users", "post"): [{"bearer": ["users:write"]}],
        ("/users", "get"): [{"bearer": ["users:read"]}],
        ("/users/{user_id}", "get"): [{"bearer": ["users:read"]}],
        ("/users/{user_id}", "patch"): [{"bearer": ["users:write"]}],
        ("/users/{user_id}", "delete"): [{"bearer": ["users:write"]}],
    }


def test_a_token_cannot_change_or_delete_an_account_that_holds_more_than_it_does(
    anonymous: TestClient, database_url: str, token: str
) -> None:
    writer = bearer(issue_token(database_url, "users:read", "users:write"))
    run_sql(
        database_url,
        "WITH u AS (INSERT INTO users (nickname) VALUES ('Boss'), ('Plain') RETURNING id) "
        "INSERT INTO accounts (user_id, email, email_key, password_hash, scopes) "
        "SELECT id, 'boss@example.com', 'boss@example.com', '!', '{audit:read}' FROM u "
        "WHERE id = (SELECT min(id) FROM u)",
    )
    boss, plain = (row["id"] for row in run_sql(database_url, "SELECT id FROM users ORDER BY id"))
    # The account is the first of the two users made.

    renamed = anonymous.patch(f"/users/{boss}", json={"name": "Pwned"}, headers=writer)
    deleted = anonymous.delete(f"/users/{boss}", headers=writer)
    for refused in (renamed, deleted):
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/not-permitted"
        assert "without audit:read" in refused.json()["detail"]
    assert anonymous.get(f"/users/{boss}", headers=writer).json()["nickname"] == "Boss"
    # One that holds no more than the token: as ever; and a token with every scope may.
    plainly = anonymous.patch(f"/users/{plain}", json={"name": "P"}, headers=writer)
    assert plainly.status_code == 200
    assert anonymous.delete(f"/users/{boss}", headers=bearer(token)).status_code == 200
    kinds = run_sql(database_url, "SELECT kind FROM audit_events ORDER BY id")
    assert [row["kind"] for row in kinds] == [
        "operator.refused",
        "operator.refused",
        "user.renamed",
        "user.deleted",
    ]
