"""Searching and sorting the user list, through HTTP on a real PostgreSQL."""

import hashlib
import time
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from tests.support import run_sql, run_with_connection
from tests.users.test_router import MAX_ID, assert_problem, create
from user_service.addresses import key
from user_service.users.repository import containing, page_query

SORTS = ["id", "-id", "created", "-created"]


def names(client: TestClient, **params: str | int) -> list[str]:
    page = client.get("/users", params=params)
    assert page.status_code == 200, page.text
    return [user["nickname"] for user in page.json()["items"]]


def every_page(client: TestClient, limit: int, **params: str | int) -> list[dict[str, Any]]:
    """Every user the listing gives, following `next_cursor` to the end."""
    seen: list[dict[str, Any]] = []
    params["limit"] = limit
    while True:
        page = client.get("/users", params=params).json()
        assert len(page["items"]) <= limit
        seen += page["items"]
        if page["next_cursor"] is None:
            return seen
        params["after"] = page["next_cursor"]
        assert len(seen) < 1000, "paging does not end"


def add_account(database_url: str, user_id: object, email: str) -> None:
    insert = (
        "INSERT INTO accounts (user_id, email, email_key, password_hash) VALUES ($1, $2, $3, 'x')"
    )
    run_with_connection(
        database_url, lambda connection: connection.execute(insert, user_id, email, key(email))
    )


def test_search_matches_a_name_prefix_or_substring_ignoring_case(client: TestClient) -> None:
    for name in ("Alice Liddell", "bob", "Malice", "ALIBABA", "al ice"):
        create(client, name)

    assert names(client, q="ali") == ["Alice Liddell", "Malice", "ALIBABA"]
    assert names(client, q="LIDD") == ["Alice Liddell"]
    assert names(client, q="alice liddell") == ["Alice Liddell"]
    assert names(client, q="zebra") == []


def test_search_matches_the_account_email(client: TestClient, database_url: str) -> None:
    carol = create(client, "carol")
    create(client, "dave")  # no account: its email is null, matched by name only
    add_account(database_url, carol["id"], "Carol.Jones@Example.org")

    page = client.get("/users", params={"q": "jones@EXAMPLE"}).json()

    assert [(user["nickname"], user["email"]) for user in page["items"]] == [
        ("carol", "Carol.Jones@Example.org")
    ]
    assert names(client, q="car") == ["carol"]  # by name and by email: once
    assert names(client, q="dave") == ["dave"]


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("0%", ["100% sure"]),
        ("%", ["100% sure"]),
        ("a_b", ["a_b"]),
        ("_", ["a_b"]),
        ("k\\s", ["back\\slash"]),
        ("\\", ["back\\slash"]),
    ],
)
def test_wildcards_in_q_are_plain_characters(client: TestClient, q: str, found: list[str]) -> None:
    for name in ("100% sure", "1000 sure", "a_b", "axb", "back\\slash", "backslash"):
        create(client, name)

    assert names(client, q=q) == found


@pytest.mark.parametrize("sort", SORTS)
def test_search_pages_never_skip_or_repeat(client: TestClient, sort: str) -> None:
    ids = [create(client, f"match {n}" if n % 3 else f"other {n}")["id"] for n in range(20)]
    client.delete(f"/users/{ids[4]}")
    listed = every_page(client, 100, sort=sort)
    expected = [user["id"] for user in listed if user["nickname"].startswith("match")]

    for limit in (1, 3, 13):
        assert [user["id"] for user in every_page(client, limit, q="MATCH", sort=sort)] == expected
    assert len(expected) == 12


def test_sort_by_creation_time_then_id_both_ways(client: TestClient, database_url: str) -> None:
    ids = [create(client, f"u{n}")["id"] for n in range(6)]
    # Creation order unlike id order, microseconds apart, with a tie that the id breaks.
    run_sql(
        database_url,
        "UPDATE users SET created_at = '2026-01-01T00:00:00Z'::timestamptz + "
        "(ARRAY[3, 1, 2, 1, 0, 5])[id] * interval '1 microsecond'",
    )
    oldest_first = [ids[4], ids[1], ids[3], ids[2], ids[0], ids[5]]

    for limit in (1, 2, 4, 50):
        assert [u["id"] for u in every_page(client, limit, sort="created")] == oldest_first
        assert [u["id"] for u in every_page(client, limit, sort="-created")] == oldest_first[::-1]
        assert [u["id"] for u in every_page(client, limit, sort="-id")] == ids[::-1]
        assert [u["id"] for u in every_page(client, limit, sort="id")] == ids


def test_created_cursor_outlives_the_user_it_came_from(client: TestClient) -> None:
    ids = [create(client, f"u{n}")["id"] for n in range(4)]
    first = client.get("/users", params={"sort": "created", "limit": 2}).json()
    assert isinstance(first["next_cursor"], str)

    client.delete(f"/users/{ids[1]}")  # the last user of the first page
    next_page: dict[str, str | int] = {"sort": "created", "limit": 2, "after": first["next_cursor"]}
    second = client.get("/users", params=next_page).json()

    assert [user["id"] for user in second["items"]] == ids[2:]


def test_sorting_by_id_keeps_integer_cursors(client: TestClient) -> None:
    for n in range(3):
        create(client, f"u{n}")
    page = client.get("/users", params={"limit": 1}).json()
    assert page["next_cursor"] == page["items"][0]["id"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "nul\u0000"}, "q"),
        ({"q": "line\nbreak"}, "q"),
        ({"sort": "name"}, "sort"),
        ({"sort": ""}, "sort"),
        ({"sort": "created", "after": "5"}, "after"),
        ({"sort": "created", "after": "5_-1"}, "after"),
        ({"sort": "created", "after": f"5_{MAX_ID + 1}"}, "after"),
        ({"sort": "created", "after": f"{MAX_ID}_1"}, "after"),  # past year 9999
        ({"sort": "id", "after": "1764412800000000_5"}, "after"),
        ({"after": "abc"}, "after"),
        ({"after": "٣"}, "after"),  # a digit, but not an ASCII one
        ({"after": ""}, "after"),
    ],
)
def test_bad_search_sort_or_cursor_is_422(
    client: TestClient, params: dict[str, str | int], field: str
) -> None:
    body = assert_problem(client.get("/users", params=params), 422)
    assert ["query", field] in [error["loc"] for error in body["errors"]]  # type: ignore[attr-defined]


def test_q_of_100_characters_is_accepted(client: TestClient) -> None:
    assert names(client, q="x" * 100) == []


def test_openapi_documents_q_and_sort(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/users"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert set(parameters) == {"limit", "after", "q", "sort"}
    assert all(parameter["description"] for parameter in parameters.values())
    assert parameters["sort"]["schema"]["enum"] == SORTS


def seed(database_url: str, count: int) -> None:
    """`count` users named like hashes, every second one with an account."""
    insert = """
        WITH added AS (
            INSERT INTO users (nickname)
            SELECT 'user ' || md5(n::text) FROM generate_series(1, $1::int) n RETURNING id
        )
        INSERT INTO accounts (user_id, email, email_key, password_hash)
        SELECT id, 'person' || id || '@example.org', 'person' || id || '@example.org', 'x'
        FROM added WHERE id % 2 = 0
    """
    run_with_connection(database_url, lambda connection: connection.execute(insert, count))
    # As autovacuum would: fresh statistics, and the GIN indexes' pending lists (where new
    # entries wait) merged, which the planner otherwise prices as a scan of their own.
    run_sql(database_url, "VACUUM ANALYZE users, accounts")


def test_substring_search_uses_the_trigram_indexes(client: TestClient, database_url: str) -> None:
    seed(database_url, 50_000)
    q = hashlib.md5(b"31337").hexdigest()[5:13]  # a substring of one user's name  # noqa: S324
    query = page_query("id", search=True, after=False, rows=51)  # what GET /users?q=… runs

    async def explain(connection: asyncpg.Connection) -> str:
        rows = await connection.fetch(f"EXPLAIN {query}", containing(q), 51)
        return "\n".join(row[0] for row in rows)

    plan = run_with_connection(database_url, explain)

    assert "Bitmap Index Scan on ix_users_nickname_trgm" in plan, plan
    assert "Bitmap Index Scan on ix_accounts_email_trgm" in plan, plan
    assert "Seq Scan" not in plan, plan

    started = time.perf_counter()
    found = names(client, q=q.upper())
    elapsed = time.perf_counter() - started
    print(f"\nGET /users?q={q.upper()} over 50,000 users: {elapsed * 1000:.1f} ms\n{plan}")
    assert found == [f"user {hashlib.md5(b'31337').hexdigest()}"]  # noqa: S324
