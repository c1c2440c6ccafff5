"""The email outbox against a real PostgreSQL and a real SMTP server (aiosmtpd)."""

import asyncio
import logging
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.smtp import SmtpServer
from tests.support import free_port, run_sql
from user_service import database
from user_service.config import Settings
from user_service.crypto import Cipher
from user_service.mail import Email, Sender, enqueue

SENDER = "user-service <no-reply@example.test>"
LINK = "https://example.test/verify?token=one-time-secret-0123456789"
CIPHER = Cipher("test")


def welcome(subject: str = "Verify your email") -> Email:
    return Email(
        to="ada@example.test",
        subject=subject,
        text=f"Open {LINK} to verify.",
        html=f'<p><a href="{LINK}">Verify</a></p>',
    )


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def settings_for(database_url: str, **smtp: Any) -> Settings:
    # testing=False: the DSN already names the test database.
    return Settings(db_dsn=database_url, testing=False, smtp_timeout=2, **smtp)


def smtp_settings(database_url: str, server: SmtpServer) -> Settings:
    return settings_for(
        database_url, smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="none"
    )


@asynccontextmanager
async def sender(settings: Settings) -> AsyncIterator[Sender]:
    async with database.connect(settings) as db:
        yield Sender(db, settings, CIPHER)


async def queue(mail: Sender, *emails: Email, then_fail: bool = False) -> None:
    """Queue `emails` in one transaction, as a flow does (which then fails, if told)."""
    async with mail.db.transaction() as connection:
        for email in emails:
            await enqueue(connection, CIPHER, email, SENDER)
        if then_fail:
            raise RuntimeError("the flow failed after queueing")


async def stopped(running: asyncio.Task[None]) -> None:
    """Cancel `running` (a Sender.run()) and check that it ends, soon, cancelled."""
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await running


def test_rolled_back_email_is_never_sent(database_url: str, smtp: SmtpServer) -> None:
    async def scenario() -> int:
        async with sender(smtp_settings(database_url, smtp)) as mail:
            with pytest.raises(RuntimeError):
                await queue(mail, welcome(), then_fail=True)
            return await mail.deliver_due()

    assert asyncio.run(scenario()) == 0
    assert smtp.messages == []
    assert run_sql(database_url, "SELECT count(*) FROM mail_outbox")[0][0] == 0


def test_committed_email_is_delivered_once_with_both_parts(
    database_url: str, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[int, int]:
        async with sender(smtp_settings(database_url, smtp)) as mail:
            await queue(mail, welcome())
            return await mail.deliver_due(), await mail.deliver_due()

    with caplog.at_level(logging.INFO, logger="user_service.mail"):
        assert asyncio.run(scenario()) == (1, 0)
    [message] = smtp.wait_for(1)
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.test"
    assert message["Subject"] == "Verify your email"
    assert message["Date"]
    assert message["Message-ID"].endswith("@example.test>")
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().rstrip() == f"Open {LINK} to verify."
    assert html.get_content().rstrip() == f'<p><a href="{LINK}">Verify</a></p>'
    assert "Email to ada@example.test sent: Verify your email" in caplog.messages
    assert not any(LINK in record.getMessage() for record in caplog.records)


def test_text_beyond_ascii_arrives_intact_and_links_stay_whole_lines(
    database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    email = Email(
        to="zoë@example.test", subject="Grüße, Zoë", text=f"Hallo Zoë: {LINK}", html="<p>Zoë</p>"
    )

    async def scenario() -> None:
        files = settings_for(database_url, smtp_host=None, mail_outbox_dir=tmp_path)
        for settings in (smtp_settings(database_url, smtp), files):
            async with sender(settings) as mail:
                await queue(mail, email)
                await mail.deliver_due()

    asyncio.run(scenario())
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "Grüße, Zoë"
    assert message.get_body(("plain",)).get_content().rstrip() == f"Hallo Zoë: {LINK}"  # type: ignore[union-attr]
    # A person can copy the link out of the file as it is (no quoted-printable breaks).
    assert LINK in next(tmp_path.glob("*.eml")).read_text()


def test_message_is_encrypted_at_rest_and_emptied_once_sent(
    database_url: str, smtp: SmtpServer
) -> None:
    async def scenario() -> None:
        async with sender(smtp_settings(database_url, smtp)) as mail:
            await queue(mail, welcome())
            stored = await mail.db.fetchval("SELECT message FROM mail_outbox")
            assert LINK.encode() not in stored
            assert b"Verify your email" not in stored
            assert LINK.encode() in CIPHER.decrypt(stored)
            assert await mail.deliver_due() == 1

    asyncio.run(scenario())
    [row] = run_sql(database_url, "SELECT message, sent_at, attempts FROM mail_outbox")
    assert row["message"] is None
    assert row["sent_at"] is not None
    assert row["attempts"] == 0


def test_smtp_down_keeps_email_queued_until_it_is_back(database_url: str) -> None:
    smtp = SmtpServer()  # not started: nothing listens on its port

    async def scenario() -> tuple[int, int]:
        async with sender(smtp_settings(database_url, smtp)) as mail:
            await queue(mail, welcome())
            down = await mail.deliver_due()
            [row] = await mail.db.fetch(
                "SELECT attempts, last_error, message IS NOT NULL AS queued, sent_at, "
                "next_attempt_at > now() AS backing_off FROM mail_outbox"
            )
            assert row["attempts"] == 1
            assert row["queued"]
            assert row["sent_at"] is None
            assert row["backing_off"]
            assert "Connect" in row["last_error"]
            assert LINK not in row["last_error"]
            assert await mail.deliver_due() == 0  # not due again yet
            await mail.db.fetchval("UPDATE mail_outbox SET next_attempt_at = now()")  # time passes
            smtp.start()
            try:
                return down, await mail.deliver_due() + await mail.deliver_due()
            finally:
                smtp.stop()

    assert asyncio.run(scenario()) == (0, 1)
    assert len(smtp.messages) == 1
    [row] = run_sql(database_url, "SELECT attempts, message, sent_at FROM mail_outbox")
    assert row["attempts"] == 1
    assert row["message"] is None
    assert row["sent_at"] is not None


def test_two_senders_deliver_each_email_exactly_once(database_url: str, smtp: SmtpServer) -> None:
    settings = smtp_settings(database_url, smtp)

    async def scenario() -> tuple[int, int]:
        async with sender(settings) as first, sender(settings) as second:
            await queue(first, *(welcome(subject=f"Email {n}") for n in range(20)))
            one, other = await asyncio.gather(first.deliver_due(), second.deliver_due())
            return one, other

    one, other = asyncio.run(scenario())
    assert one + other == 20
    assert min(one, other) > 0  # both took part, each skipping the rows the other held
    subjects = sorted(message["Subject"] for message in smtp.wait_for(20))
    assert subjects == sorted(f"Email {n}" for n in range(20))
    assert len(smtp.messages) == 20


def test_wake_delivers_before_the_next_poll(database_url: str, smtp: SmtpServer) -> None:
    async def scenario() -> None:
        async with sender(smtp_settings(database_url, smtp)) as mail:
            running = asyncio.create_task(mail.run())
            await asyncio.sleep(0.1)  # its first pass found nothing; it waits for a poll
            await queue(mail, welcome())
            mail.wake()
            await asyncio.to_thread(smtp.wait_for, 1, 0.5)
            # At once: the cancel lands while the sender still talks to the server.
            await stopped(running)

    asyncio.run(scenario())


def test_run_survives_a_database_that_is_down(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        db_dsn=f"postgresql://nobody@127.0.0.1:{free_port()}/none", db_pool_min_size=0
    )

    async def scenario() -> bool:
        async with sender(settings) as mail:
            running = asyncio.create_task(mail.run())
            await asyncio.sleep(0.3)
            alive = not running.done()
            await stopped(running)
            return alive

    assert asyncio.run(scenario())
    assert any("waits for the database" in message for message in caplog.messages)


def test_without_smtp_host_email_is_written_to_a_private_file(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "outbox"
    settings = settings_for(database_url, smtp_host=None, mail_outbox_dir=directory)

    async def scenario() -> int:
        async with sender(settings) as mail:
            await queue(mail, welcome())
            return await mail.deliver_due()

    with caplog.at_level(logging.INFO, logger="user_service.mail"):
        assert asyncio.run(scenario()) == 1
    [path] = directory.iterdir()
    assert path.name == "1.eml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=policy.default)
    assert written["To"] == "ada@example.test"
    plain = written.get_body(("plain",))
    assert plain is not None
    assert LINK in plain.get_content()
    assert f"Email to ada@example.test written to {path}" in caplog.messages
    [row] = run_sql(database_url, "SELECT message, sent_at FROM mail_outbox")
    assert row["message"] is None
    assert row["sent_at"] is not None
