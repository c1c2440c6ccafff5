"""Properties that hold for any input Hypothesis can think of, through the HTTP API."""

import json
import unicodedata

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import run_sql

# Every code point, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)
# Around the length limit too.
LONG_TEXT = st.integers(250, 260).flatmap(
    lambda n: st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=n, max_size=n)
)
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


JSON = {"Content-Type": "application/json"}


def body(name: str) -> str:
    """`{"name": name}` as ASCII JSON. The client's `json=` encodes UTF-8, which has no lone
    surrogates (it raises before sending), while `"\\ud800"` is JSON any client may send."""
    return json.dumps({"name": name})


def acceptable(name: str) -> bool:
    """The documented rule, stated independently of the code: 1-255 characters, no control
    characters (Unicode category Cc) or lone surrogates (Cs), not only whitespace."""
    return (
        1 <= len(name) <= 255
        and not any(unicodedata.category(c) in ("Cc", "Cs") for c in name)
        and not name.isspace()
    )


@PROPERTY
@given(name=ANY_TEXT | LONG_TEXT)
def test_any_name_is_stored_exactly_or_rejected_with_422(client: TestClient, name: str) -> None:
    created = client.post("/users", content=body(name), headers=JSON)

    assert created.status_code == (201 if acceptable(name) else 422), (name, created.text)
    if created.status_code == 201:
        read = client.get(created.headers["location"])
        assert read.json() == {
            "id": created.json()["id"],
            "nickname": name,
            "email": None,
            "email_verified": False,
            "created_at": read.json()["created_at"],
        }


@PROPERTY
@given(name=ANY_TEXT | LONG_TEXT)
def test_patch_then_get_round_trips(client: TestClient, name: str) -> None:
    user = client.post("/users", json={"name": "before"}).json()

    renamed = client.patch(f"/users/{user['id']}", content=body(name), headers=JSON)

    expected = name if acceptable(name) else "before"
    assert renamed.status_code == (200 if acceptable(name) else 422), (name, renamed.text)
    assert client.get(f"/users/{user['id']}").json()["nickname"] == expected


@settings(PROPERTY, max_examples=40)
@given(
    count=st.integers(0, 25),
    deleted=st.sets(st.integers(1, 25)),
    start=st.integers(0, 30),
)
def test_pages_return_each_user_once_in_order_for_every_limit(
    client: TestClient, database_url: str, count: int, deleted: set[int], start: int
) -> None:
    run_sql(database_url, "TRUNCATE users RESTART IDENTITY CASCADE")
    ids = [client.post("/users", json={"name": f"u{n}"}).json()["id"] for n in range(count)]
    for user_id in deleted & set(ids):
        client.delete(f"/users/{user_id}")
    expected = sorted(set(ids) - deleted)

    for limit in range(1, len(expected) + 2):
        seen, after = [], start
        pages = 0
        while True:
            page = client.get("/users", params={"limit": limit, "after": after}).json()
            assert len(page["items"]) <= limit
            seen += [user["id"] for user in page["items"]]
            pages += 1
            if page["next_cursor"] is None:
                break
            after = page["next_cursor"]
            assert pages <= len(expected) + 1, "pagination does not end"
        assert seen == [user_id for user_id in expected if user_id > start], limit
