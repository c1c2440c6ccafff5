"""The operators' console through HTTP, as a browser without JavaScript uses it: pages, forms
with their CSRF field, redirects; emails to a real SMTP server."""

import html
import re
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx2
import pyotp
import pytest
from fastapi.testclient import TestClient

from tests.accounts import conftest as accounts
from tests.accounts.conftest import PASSWORD, bearer, link_token, login, mails_to, signed_up
from tests.smtp import SmtpServer
from tests.support import CLI, run_sql
from user_service.config import get_settings
from user_service.main import get_app

smtp = accounts.smtp  # the accounts' fixture: the service's emails go to a real SMTP server

OPERATOR = "op@example.com"
EVERY_SCOPE = ("users:read", "users:write", "audit:read")
PAGES = ("/console", "/console/users", "/console/users/new", "/console/audit", "/console/tokens")
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def site(smtp: SmtpServer) -> Iterator[TestClient]:
    """A browser on the app in this process: it keeps cookies and follows no redirect."""
    with TestClient(get_app(), follow_redirects=False) as client:
        yield client


def csrf(site: TestClient) -> str:
    """The CSRF token this browser's pages carry now."""
    found = re.search(r'name="csrf" value="([^"]+)"', site.get("/account/sign-in").text)
    assert found
    return found[1]


def post(site: TestClient, path: str, **fields: str | list[str]) -> httpx2.Response:
    """Send a form of the site's, with the CSRF field its pages carry."""
    return site.post(path, data={"csrf": csrf(site), **fields})


def sign_in(site: TestClient, email: str, password: str = PASSWORD) -> None:
    """Sign this browser in through the sign-in form (as nobody else first)."""
    site.cookies.clear()
    answer = post(site, "/account/sign-in", email=email, password=password, next="/console")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console"


def user_id(site: TestClient, pair: dict[str, str]) -> int:
    found: int = site.get("/users/me", headers=bearer(pair)).json()["id"]
    return found


def grant(email: str, *scopes: str) -> None:
    granted = subprocess.run(
        [CLI, "accounts", "grant", email, *scopes], capture_output=True, text=True, check=False
    )
    assert granted.returncode == 0, granted.stderr


def operator(site: TestClient, smtp: SmtpServer, *scopes: str) -> int:
    """An account with `scopes` (every operator's by default), signed in here: its user id."""
    pair = signed_up(site, smtp, OPERATOR, "Olive")
    grant(OPERATOR, *(scopes or EVERY_SCOPE))
    sign_in(site, OPERATOR)
    return user_id(site, pair)


def rows(page: httpx2.Response) -> list[str]:
    """The ids of the users a list of users shows, in order."""
    return re.findall(r'<tr>\s*<td><a href="/console/users/(\d+)">', page.text)


def next_link(page: httpx2.Response) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', page.text)
    return html.unescape(found[1]) if found else None


def sessions(site: TestClient, user: int) -> list[str]:
    page = site.get(f"/console/users/{user}")
    return re.findall(rf"/console/users/{user}/sessions/([0-9a-f-]{{36}})/end", page.text)


def test_anonymous_is_sent_to_sign_in_and_a_person_needs_the_scopes(
    site: TestClient, smtp: SmtpServer
) -> None:
    for path in PAGES:
        answer = site.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/account/sign-in?next={quote(path)}"

    signed_up(site, smtp, "pat@example.com", "Pat")
    sign_in(site, "pat@example.com")
    for path in PAGES:
        assert site.get(path).status_code == 403, path
    assert post(site, "/console/users/new", name="Mallory").status_code == 403

    grant("pat@example.com", "users:read")  # the pages read the scopes at each request
    assert site.get("/console/users").status_code == 200
    assert site.get("/console/audit").status_code == 403
    for path in ("/console/users/new", "/console/users/1/delete"):
        assert site.get(path).status_code == 403
    assert post(site, "/console/users/1/name", name="Mallory").status_code == 403
    assert post(site, "/console/users/new", name="Mallory").status_code == 403
    assert "Mallory" not in site.get("/console/users").text


def test_the_overview_counts_and_charts_sign_ups_and_sign_ins(
    site: TestClient, smtp: SmtpServer
) -> None:
    operator(site, smtp)
    signed_up(site, smtp, "pat@example.com", "Pat")
    page = site.get("/console")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for count, what in [
        (2, "users"),
        (2, "accounts"),
        (2, "verified accounts"),
        (3, "live sessions"),  # two API sign-ins and this browser's
        (3, "sign-ins in the last 24 h"),
        (2, "sign-ups in the last 24 h"),
    ]:
        assert f"<strong>{count}</strong> {what}</p>" in page.text, what
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert '<title id="chart-title">Sign-ups and sign-ins per day' in svg
    assert svg.count("<polyline") == 2
    assert "style=" not in page.text  # the CSP forbids inline styles
    assert "<tr><td>Sign-ups</td><td>2</td></tr>" in page.text
    assert "<tr><td>Sign-ins</td><td>3</td></tr>" in page.text
    assert page.text.count("<td>0</td><td>0</td></tr>") == 29  # every other day, at zero


def test_users_are_searched_sorted_and_paged(
    site: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    operator(site, smtp)
    run_sql(
        database_url,
        "INSERT INTO users (nickname) SELECT 'Member ' || i FROM generate_series(1, 59) i",
    )
    first = site.get("/console/users")
    assert rows(first)[:2] == ["1", "2"]
    assert len(rows(first)) == 50
    second = site.get(str(next_link(first)))
    assert rows(second) == [str(i) for i in range(51, 61)]
    assert next_link(second) is None

    newest = site.get("/console/users", params={"sort": "-created"})
    assert rows(newest)[0] == "60"  # inserted together: ties go by id
    assert len(rows(site.get(str(next_link(newest))))) == 10
    assert site.get("/console/users", params={"sort": "created", "after": "7"}).status_code == 422

    by_email = site.get("/console/users", params={"q": "P@EXAMPLE"})
    assert rows(by_email) == ["1"]
    assert "op@example.com" in by_email.text
    by_name = site.get("/console/users", params={"q": "member 5"})
    assert rows(by_name) == [str(i) for i in (6, *range(51, 61))]
    assert "No user matches" in site.get("/console/users", params={"q": "nobody"}).text

    # The search box's htmx request gets the table alone, for its target.
    table = site.get(
        "/console/users",
        params={"q": "Member 1"},
        headers={"HX-Request": "true", "HX-Target": "users"},
    )
    assert table.text.lstrip().startswith("<table>")
    assert len(rows(table)) == 11


def test_an_invited_person_chooses_a_password_through_the_emailed_link(
    site: TestClient, smtp: SmtpServer
) -> None:
    operator(site, smtp)
    created = post(site, "/console/users/new", name="Ivy", email="ivy@example.com")
    assert created.status_code == 303
    found = re.fullmatch(r"/console/users/(\d+)\?done=invited", created.headers["location"])
    assert found
    ivy = int(found[1])
    page = site.get(created.headers["location"])
    assert "ivy@example.com" in page.text
    assert "(not verified)" in page.text

    [invitation] = mails_to(smtp, "ivy@example.com")
    assert "/account/reset-password?token=" in accounts.text_of(invitation)
    nobody = site.post("/auth/login", data={"username": "ivy@example.com", "password": "!invited"})
    assert nobody.status_code == 401

    site.cookies.clear()  # Ivy's own browser
    token = link_token(invitation)
    assert site.get(f"/account/reset-password?token={token}").status_code == 200
    chosen = post(site, "/account/reset-password", token=token, password=NEW_PASSWORD)
    assert chosen.status_code == 303
    sign_in(site, "ivy@example.com", NEW_PASSWORD)  # verified by the link: no 403
    assert "(verified)" in site.get("/account").text

    sign_in(site, OPERATOR)
    taken = post(site, "/console/users/new", name="Ivy again", email="IVY@example.com")
    assert taken.status_code == 409
    assert "Another account uses this email address now." in taken.text
    assert 'value="Ivy again"' in taken.text

    plain = post(site, "/console/users/new", name="Robot", email="")
    assert plain.status_code == 303
    page = site.get(plain.headers["location"])
    assert "The user is created." in page.text
    assert "this user cannot sign in" in page.text
    assert "/name" in page.text
    assert "/delete" in page.text
    assert "/disable" not in page.text
    assert "/reset" not in page.text
    assert ivy != int(plain.headers["location"].split("/")[3].split("?")[0])


def test_an_operator_renames_resets_signs_out_disables_and_changes_the_email(
    site: TestClient, smtp: SmtpServer
) -> None:
    operator(site, smtp)
    pair = signed_up(site, smtp, "pat@example.com", "Pat")
    pat = user_id(site, pair)
    path = f"/console/users/{pat}"

    assert post(site, f"{path}/name", name="Patricia").headers["location"] == f"{path}?done=renamed"
    assert "<dd>Patricia</dd>" in site.get(path).text
    assert post(site, f"{path}/name", name=" ").status_code == 422

    assert post(site, f"{path}/reset").status_code == 303
    reset = mails_to(smtp, "pat@example.com", 2)[-1]
    assert reset["Subject"] == "Reset your password"
    assert "/account/reset-password?token=" in accounts.text_of(reset)

    login(site, "pat@example.com")
    first, second = sessions(site, pat)
    assert post(site, f"{path}/sessions/{first}/end").status_code == 303
    assert sessions(site, pat) == [second]
    assert post(site, f"{path}/sessions/end").status_code == 303
    assert sessions(site, pat) == []

    live = login(site, "pat@example.com")
    assert site.get("/users/me", headers=bearer(live)).status_code == 200
    assert post(site, f"{path}/disable").status_code == 303
    assert "<strong>disabled</strong>" in site.get(path).text
    refused = site.post("/auth/login", data={"username": "pat@example.com", "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/account-disabled"
    assert site.get("/users/me", headers=bearer(live)).status_code == 401
    assert post(site, f"{path}/enable").status_code == 303
    login(site, "pat@example.com")

    assert post(site, f"{path}/email", email="not an address").status_code == 422
    assert post(site, f"{path}/email", email=OPERATOR).status_code == 409
    assert post(site, f"{path}/email", email="pat@new.example").status_code == 303
    assert "pat@new.example <strong>(not verified)</strong>" in site.get(path).text
    notice = mails_to(smtp, "pat@example.com", 3)[-1]
    assert notice["Subject"] == "Your email address was changed"
    unverified = site.post(
        "/auth/login", data={"username": "pat@new.example", "password": PASSWORD}
    )
    assert unverified.json()["type"] == "/problems/email-not-verified"
    token = link_token(mails_to(smtp, "pat@new.example")[0])
    assert site.post("/auth/verify", json={"token": token}).status_code == 200
    login(site, "pat@new.example")

    confirm = site.get(f"{path}/delete")
    assert confirm.status_code == 200
    assert f'action="{path}/delete"' in confirm.text
    assert "Patricia" in site.get("/console/users").text  # the GET deleted nothing
    deleted = post(site, f"{path}/delete")
    assert deleted.headers["location"] == "/console/users?done=deleted"
    assert site.get(path).status_code == 404
    assert "Patricia" not in site.get("/console/users").text

    events = site.get("/console/audit", params={"user_id": pat}).text
    for kind in (
        "user.renamed",
        "user.reset_sent",
        "session.revoked",
        "user.sessions_revoked",
        "user.disabled",
        "user.enabled",
        "user.email_changed_by_admin",
        "user.deleted",
    ):
        assert f"<td>{kind}</td>" in events, kind


def test_an_api_token_is_shown_once_works_and_is_revoked(
    site: TestClient, smtp: SmtpServer
) -> None:
    operator(site, smtp, "users:read", "users:write")
    form = site.get("/console/tokens").text
    assert 'value="users:write"' in form
    assert 'value="audit:read"' not in form  # the operator does not hold it

    beyond = post(site, "/console/tokens", name="sneaky", scopes=["users:read", "audit:read"])
    assert beyond.status_code == 403
    assert "sneaky" not in site.get("/console/tokens").text

    created = post(site, "/console/tokens", name="ci", scopes=["users:read"], expires_in_days="30")
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"  # the secret stays in no cache
    [secret] = re.findall(r'value="(ust_[\w-]+)"', created.text)
    listed = site.get("/console/tokens").text
    assert "<td>ci</td>" in listed
    assert "<td>live</td>" in listed
    assert secret not in listed

    assert site.get("/users", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    writing = site.post("/users", json={"name": "x"}, headers={"Authorization": f"Bearer {secret}"})
    assert writing.status_code == 403
    again = post(site, "/console/tokens", name="ci", scopes=["users:read"])
    assert again.status_code == 422
    assert "already exists" in again.text

    assert post(site, "/console/tokens/revoke", name="ci").status_code == 303
    assert "<td>revoked</td>" in site.get("/console/tokens").text
    assert site.get("/users", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert post(site, "/console/tokens/revoke", name="ci").status_code == 404


def test_the_audit_log_is_filtered_ordered_and_paged(
    site: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    me = operator(site, smtp)
    post(site, "/console/users/new", name="Ivy", email="ivy@example.com")
    newest = site.get("/console/audit")
    assert newest.text.index("<td>user.invited</td>") < newest.text.index(
        "<td>account.registered</td>"
    )
    assert f"<td>user:{me}</td>" in newest.text  # the operator is the invitation's actor
    assert 'href="/console/users/2">user 2</a>' in newest.text
    oldest = site.get("/console/audit", params={"order": "oldest", "kind": "", "user_id": ""})
    assert oldest.text.index("<td>account.registered</td>") < oldest.text.index(
        "<td>user.invited</td>"
    )
    invited = site.get("/console/audit", params={"kind": "user.invited"}).text
    assert invited.count("<td>user.invited</td>") == 1
    assert "<td>account.registered</td>" not in invited
    assert "email: ivy@example.com" in invited
    assert site.get("/console/audit", params={"kind": "made.up"}).status_code == 422

    run_sql(
        database_url,
        "INSERT INTO audit_events (kind, actor, subject_user_id) "
        "SELECT 'signin.failed', 'anonymous', 7 FROM generate_series(1, 60)",
    )
    first = site.get("/console/audit", params={"user_id": "7"})
    assert first.text.count("<td>signin.failed</td>") == 50
    second = site.get(str(next_link(first)))
    assert second.text.count("<td>signin.failed</td>") == 10
    assert next_link(second) is None


def test_a_form_without_its_csrf_field_is_refused_and_changes_nothing(
    site: TestClient, smtp: SmtpServer
) -> None:
    me = operator(site, smtp)
    for fields in ({"name": "Forged"}, {"name": "Forged", "csrf": "guess"}):
        answer = site.post(f"/console/users/{me}/name", data=fields)
        assert answer.status_code == 403
        assert "did not come from this site" in answer.text
    assert site.post(f"/console/users/{me}/disable").status_code == 403
    page = site.get(f"/console/users/{me}").text
    assert "<dd>Olive</dd>" in page
    assert "<dd>enabled</dd>" in page


def test_an_operator_cannot_disable_or_delete_their_own_account(
    site: TestClient, smtp: SmtpServer
) -> None:
    me = operator(site, smtp)
    for action in ("disable", "delete"):
        answer = post(site, f"/console/users/{me}/{action}")
        assert answer.status_code == 409
        assert "your own account" in answer.text
    page = site.get(f"/console/users/{me}").text
    assert "<dd>enabled</dd>" in page


def test_an_oversized_or_lookalike_address_gets_the_form_again_with_a_422(
    site: TestClient, smtp: SmtpServer
) -> None:
    huge = "a" * 3000 + "@example.com"
    signing_in = post(site, "/account/sign-in", email=huge, password="x" * 12, next="/account")
    assert signing_in.status_code == 422
    assert 'action="/account/sign-in"' in signing_in.text  # the form again, saying why
    assert "Email: String should have at most 254 characters" in signing_in.text
    forgot = post(site, "/account/forgot-password", email=huge)
    assert forgot.status_code == 422
    assert 'action="/account/forgot-password"' in forgot.text

    operator(site, smtp)
    pair = signed_up(site, smtp, "pat@example.com", "Pat")
    pat = user_id(site, pair)
    sign_in(site, OPERATOR)
    changed = post(site, f"/console/users/{pat}/email", email="pat\u200b@example.com")
    assert changed.status_code == 422
    assert "unsafe characters" in changed.text
    assert "pat@example.com" in site.get(f"/console/users/{pat}").text


def _refused(answer: httpx2.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert "You may not" in answer.text
    assert "without audit:read, metrics:read" in answer.text


def test_an_operator_cannot_act_on_an_account_that_holds_more_than_they_do(
    site: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    me = operator(site, smtp, "users:read", "users:write")
    boss = signed_up(site, smtp, "boss@example.com", "Boss")
    boss_id = user_id(site, boss)
    grant("boss@example.com", "audit:read", "metrics:read")
    second = login(site, "boss@example.com")
    session = sessions(site, boss_id)[0]
    path = f"/console/users/{boss_id}"
    mails = len(smtp.messages)

    # The takeover the probe found started here: the address, then a reset to it.
    _refused(post(site, f"{path}/email", email="mallory@example.com"))
    _refused(post(site, f"{path}/reset"))
    _refused(post(site, f"{path}/name", name="Pwned"))
    _refused(post(site, f"{path}/disable"))
    _refused(post(site, f"{path}/sessions/end"))
    _refused(post(site, f"{path}/sessions/{session}/end"))
    _refused(post(site, f"{path}/delete"))

    page = site.get(path).text
    assert "<dd>Boss</dd>" in page
    assert "boss@example.com" in page
    assert "<dd>enabled</dd>" in page
    assert len(sessions(site, boss_id)) == 2
    assert site.get("/audit", headers=bearer(second)).status_code == 200  # still signed in
    time.sleep(0.5)
    assert len(smtp.messages) == mails  # nothing emailed, to anyone
    assert not mails_to(smtp, "mallory@example.com", 0)
    refused = run_sql(
        database_url,
        "SELECT actor, subject_user_id, details->>'action' AS action, details->'lacking' "
        "AS lacking FROM audit_events WHERE kind = 'operator.refused' ORDER BY id",
    )
    assert [tuple(row) for row in refused] == [
        (f"user:{me}", boss_id, f"{action} this account", '["audit:read", "metrics:read"]')
        for action in (
            "change the email of",
            "send a password reset to",
            "rename",
            "disable",
            "end the sessions of",
            "end a session of",
            "delete",
        )
    ]


def test_an_operator_cannot_revoke_a_token_that_holds_more_than_they_do(
    site: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    operator(site, smtp, "users:read", "users:write")
    tokens_cli = [CLI, "tokens", "create", "--name", "auditor", "--scopes", "audit:read"]
    auditor = subprocess.run(tokens_cli, capture_output=True, text=True, check=True).stdout
    answer = post(site, "/console/tokens/revoke", name="auditor")
    assert answer.status_code == 403
    assert "You may not revoke the token &#39;auditor&#39; without audit:read." in answer.text
    assert (
        site.get("/audit", headers={"Authorization": f"Bearer {auditor.strip()}"}).status_code
        == 200
    )
    kinds = run_sql(database_url, "SELECT kind FROM audit_events WHERE kind LIKE 'api_token.%'")
    assert [row["kind"] for row in kinds] == ["api_token.created"]  # none revoked


def test_an_operator_changing_an_address_ends_that_persons_sessions(
    site: TestClient, smtp: SmtpServer
) -> None:
    operator(site, smtp)
    pair = signed_up(site, smtp, "pat@example.com", "Pat")
    pat = user_id(site, pair)
    assert post(site, f"/console/users/{pat}/email", email="pat@new.example").status_code == 303
    assert site.get("/users/me", headers=bearer(pair)).status_code == 401
    refreshed = site.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


def test_signing_in_again_ends_the_session_it_replaces(site: TestClient, smtp: SmtpServer) -> None:
    signed_up(site, smtp, "pat@example.com", "Pat")
    sign_in(site, "pat@example.com")
    first = site.cookies["user_service_session"]
    assert site.get("/account").status_code == 200
    sign_in_again = post(site, "/account/sign-in", email="pat@example.com", password=PASSWORD)
    assert sign_in_again.status_code == 303
    assert site.cookies["user_service_session"] != first
    assert site.get("/account").status_code == 200
    site.cookies.clear()
    site.cookies.set("user_service_session", first)  # the old cookie, kept by someone
    old = site.get("/account")
    assert old.status_code == 303
    assert old.headers["location"].startswith("/account/sign-in")


def test_ending_someone_elses_session_is_not_found_and_ends_nothing(
    site: TestClient, smtp: SmtpServer
) -> None:
    pair = signed_up(site, smtp, "pat@example.com", "Pat")
    [theirs] = site.get("/auth/sessions", headers=bearer(pair)).json()
    signed_up(site, smtp, "mallory@example.com", "Mallory")
    sign_in(site, "mallory@example.com")
    answer = post(site, f"/account/sessions/{theirs['id']}/end")
    assert answer.status_code == 404
    assert "signed out" not in answer.text
    assert site.get("/users/me", headers=bearer(pair)).status_code == 200


def test_a_planted_csrf_cookie_and_field_do_not_post_as_the_person(
    site: TestClient, smtp: SmtpServer
) -> None:
    signed_up(site, smtp, "pat@example.com", "Pat")
    sign_in(site, "pat@example.com")
    # What a sibling subdomain (or plain http on the network) can plant: a cookie and a
    # field that match, the attacker's own choice or taken from the attacker's own browser.
    with TestClient(get_app(), follow_redirects=False) as attacker:
        theirs = csrf(attacker), attacker.cookies["user_service_csrf"]
    session = site.cookies["user_service_session"]
    for token, cookie in (("planted", "planted"), theirs):
        site.cookies.clear()
        site.cookies.set("user_service_session", session)
        site.cookies.set("user_service_csrf", cookie)
        forged = site.post("/account/name", data={"csrf": token, "name": "Hacked"})
        assert forged.status_code == 403
        assert "did not come from this site" in forged.text
    assert "Hacked" not in site.get("/account").text


def test_the_csrf_token_is_a_new_one_at_sign_in_and_at_sign_out(
    site: TestClient, smtp: SmtpServer
) -> None:
    signed_up(site, smtp, "pat@example.com", "Pat")
    site.cookies.clear()
    before = csrf(site)
    signing_in = {"email": "pat@example.com", "password": PASSWORD, "next": "/account"}
    assert site.post("/account/sign-in", data={"csrf": before, **signing_in}).status_code == 303
    signed = csrf(site)
    assert signed != before
    refused = site.post("/account/name", data={"csrf": before, "name": "Old token"})
    assert refused.status_code == 403  # the token from before sign-in serves no signed-in form
    assert site.post("/account/sign-out", data={"csrf": signed}).status_code == 303
    after = csrf(site)
    assert after not in (before, signed)
    for stale in (before, signed):
        again = site.post("/account/sign-in", data={"csrf": stale, **signing_in})
        assert again.status_code == 403
    assert site.post("/account/sign-in", data={"csrf": after, **signing_in}).status_code == 303


def test_under_an_https_public_url_cookies_are_host_only_and_hsts_is_on(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> None:
    with TestClient(get_app(), follow_redirects=False) as plain:
        assert "strict-transport-security" not in plain.get("/healthz").headers
        plain.get("/account/sign-in")
        assert list(plain.cookies.keys()) == ["user_service_csrf"]
    monkeypatch.setenv("PUBLIC_URL", "https://id.example")
    get_settings.cache_clear()
    with TestClient(get_app(), base_url="https://testserver", follow_redirects=False) as site:
        set_cookie = site.get("/account/sign-in").headers["set-cookie"]
        for path in ("/healthz", "/users", "/account/sign-in", "/nowhere"):
            answer = site.get(path)
            assert answer.headers["strict-transport-security"] == "max-age=31536000", path
        assert set_cookie.startswith("__Host-user_service_csrf=")
        assert "Secure" in set_cookie
        assert "Path=/" in set_cookie
        assert "Domain" not in set_cookie
        signed_up(site, smtp, "pat@example.com", "Pat")
        form = {"email": "pat@example.com", "password": PASSWORD, "next": "/account"}
        signed_in = site.post("/account/sign-in", data={"csrf": csrf(site), **form})
        assert signed_in.status_code == 303
        assert "__Host-user_service_session" in site.cookies
        assert site.get("/account").status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:x",
    ],
)
def test_the_page_after_sign_in_is_always_on_this_site(
    site: TestClient, smtp: SmtpServer, target: str
) -> None:
    signed_up(site, smtp, "pat@example.com", "Pat")
    form = {"email": "pat@example.com", "password": PASSWORD, "next": target}
    answer = site.post("/account/sign-in", data={"csrf": csrf(site), **form})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account"


def test_an_operator_without_a_second_factor_is_sent_to_set_one_up(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> None:
    monkeypatch.setenv("AUTH_OPERATOR_MFA", "required")  # the default
    get_settings.cache_clear()
    with TestClient(get_app(), follow_redirects=False) as site:
        operator(site, smtp)
        answer = site.get("/console/users")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/account?done=second-factor#two-factor"
        page = site.get("/account?done=second-factor").text
        assert "need a second factor" in page
        assert "Set up an authenticator app" in page


def test_an_operator_takes_a_persons_second_factors_off_but_not_their_own(
    site: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    me = operator(site, smtp)
    pair = signed_up(site, smtp, "lost@example.com", "Lost Phone")
    lost = user_id(site, pair)
    started = site.post("/users/me/mfa/totp", json={"password": PASSWORD}, headers=bearer(pair))
    code = pyotp.TOTP(started.json()["secret"]).now()
    site.post("/users/me/mfa/totp/confirm", json={"code": code}, headers=bearer(pair))
    asked = site.post("/auth/login", data={"username": "lost@example.com", "password": PASSWORD})
    assert asked.status_code == 401  # a second factor asked for

    assert "Take the second factors off" in site.get(f"/console/users/{lost}").text
    cleared = post(site, f"/console/users/{lost}/second-factors/clear")
    assert cleared.headers["location"] == f"/console/users/{lost}?done=second-factors-cleared"
    login(site, "lost@example.com")  # the password alone
    notice = mails_to(smtp, "lost@example.com", 3)[-1]
    assert "An operator took its second factors off" in accounts.text_of(notice)
    own = post(site, f"/console/users/{me}/second-factors/clear")
    assert own.status_code == 409
    kinds = run_sql(database_url, "SELECT kind, actor FROM audit_events WHERE kind = 'mfa.cleared'")
    assert [tuple(row) for row in kinds] == [("mfa.cleared", f"user:{me}")]


def test_an_authenticator_app_through_the_account_pages(site: TestClient, smtp: SmtpServer) -> None:
    signed_up(site, smtp, "pages@example.com", "Page Person")
    sign_in(site, "pages@example.com")
    wrong = post(site, "/account/mfa/totp", password="not my password")
    assert wrong.status_code == 403
    setup = post(site, "/account/mfa/totp", password=PASSWORD)
    assert "<svg" in setup.text  # the QR code, drawn here
    found = re.search(r'<code class="secret">([A-Z2-7]+)</code>', setup.text)
    assert found
    totp = pyotp.TOTP(found[1])
    assert post(site, "/account/mfa/totp/confirm", code="12").status_code == 422
    codes = re.findall(
        r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>",
        post(site, "/account/mfa/totp/confirm", code=totp.now()).text,
    )
    assert len(codes) == 10
    renewed = post(site, "/account/mfa/recovery-codes", password=PASSWORD, factor=codes[0])
    new = re.findall(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>", renewed.text)
    assert len(new) == 10
    assert not set(new) & set(codes)

    site.cookies.clear()
    asked = post(
        site, "/account/sign-in", email="pages@example.com", password=PASSWORD, next="/account"
    )
    assert asked.status_code == 200
    assert "Authentication code" in asked.text
    token = re.search(r'name="mfa_token" value="([^"]+)"', asked.text)
    assert token
    refused = post(
        site, "/account/second-factor", mfa_token=token[1], code="000000", next="/account"
    )
    assert refused.status_code == 401
    assert "The code is wrong, or used already." in refused.text
    assert f'value="{token[1]}"' in refused.text  # the same challenge, asked again
    done = post(
        site, "/account/second-factor", mfa_token=token[1], recovery_code=new[0], next="/account"
    )
    assert done.status_code == 303
    assert "password + code" in site.get("/account").text
    spent = post(site, "/account/second-factor", mfa_token=token[1], recovery_code=new[1])
    assert spent.status_code == 401
    assert 'action="/account/sign-in"' in spent.text  # the token is spent: sign in again

    off = post(site, "/account/mfa/totp/off", password=PASSWORD, factor=new[2])
    assert off.headers["location"] == "/account?done=totp-off#two-factor"
    assert "Set up an authenticator app" in site.get("/account").text
    options = site.post("/account/passkey-options", data={"csrf": csrf(site)})
    assert options.status_code == 200
    assert options.json()["options"]["rpId"] == "127.0.0.1"
    forged = post(
        site, "/account/passkey", challenge_token=options.json()["challenge_token"], credential="{}"
    )
    assert forged.status_code == 400
