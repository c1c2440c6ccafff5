"""Email through a transactional outbox: a flow queues its email in its own transaction, and
`Sender` delivers it afterwards by SMTP (or, without SMTP_HOST, into .eml files)."""

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

import aiosmtplib
import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    func,
    text,
)

from .config import Settings
from .crypto import Cipher
from .database import UNAVAILABLE, Connection, Database, metadata

logger = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds; another worker's wake() does not reach this one
PORTS = {"starttls": 587, "tls": 465, "none": 25}

outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("recipient", Text, nullable=False),
    # The whole message, encrypted: it carries one-time links. Emptied once sent.
    Column("message", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Index("ix_mail_outbox_due", "next_attempt_at", postgresql_where=text("sent_at IS NULL")),
)

# Locked rows are being sent by another worker: skipping them is what keeps one email from
# going out twice. Rows already tried in this pass are skipped, so a pass ends.
_CLAIM = (
    "SELECT id, recipient, message FROM mail_outbox "
    "WHERE sent_at IS NULL AND next_attempt_at <= now() AND id <> ALL($1::bigint[]) "
    "ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_SENT = "UPDATE mail_outbox SET message = NULL, sent_at = now(), last_error = NULL WHERE id = $1"
# 1 s, 2 s, 4 s … up to 5 min. clock_timestamp(), not now(): a timeout may have taken longer
# than the first delays since the transaction began.
_FAILED = (
    "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, "
    "next_attempt_at = clock_timestamp() "
    "+ least(interval '1 second' * power(2, least(attempts, 9)), interval '5 minutes') "
    "WHERE id = $1"
)


@dataclass(frozen=True)
class Email:
    """An email to queue: `text` and `html` are the same content, as alternative parts."""

    to: str
    subject: str
    text: str
    html: str


async def enqueue(connection: Connection, cipher: Cipher, email: Email, sender: str) -> None:
    """Queue `email` (From: `sender`, i.e. settings.mail_from) in the caller's transaction."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(usegmt=True)
    # The sender's domain: make_msgid's default asks DNS for this host's name, blocking.
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    # Whole lines, not quoted-printable: a link stays one piece of text that a person (or
    # grep, on an .eml file) can copy. 8bit needs SMTP's 8BITMIME, which servers offer.
    message.set_content(email.text, cte=_transfer_encoding(email.text))
    message.add_alternative(email.html, subtype="html", cte=_transfer_encoding(email.html))
    await connection.execute(
        "INSERT INTO mail_outbox (recipient, message) VALUES ($1, $2)",
        email.to,
        cipher.encrypt(message.as_bytes(policy=policy.SMTP)),
    )


def _transfer_encoding(text: str) -> str:
    return "7bit" if text.isascii() else "8bit"


class Sender:
    """Delivers queued email, at least once: an email accepted by the server whose row could
    not then be marked sent (the database gone at that instant) is sent again."""

    def __init__(self, db: Database, settings: Settings, cipher: Cipher) -> None:
        self.db = db
        self.settings = settings
        self.cipher = cipher
        self._woken = asyncio.Event()

    async def run(self) -> None:
        """Deliver due email forever, every POLL_INTERVAL or at once when woken."""
        task = asyncio.current_task()
        while True:
            self._woken.clear()
            try:
                await self.deliver_due()
            except (*UNAVAILABLE, asyncpg.UndefinedTableError) as exc:
                # Down, or not migrated yet (/readyz says 503 meanwhile): expected, temporary.
                logger.warning("Email delivery waits for the database: %s", exc)
            except Exception:
                logger.exception("Email delivery failed; it retries soon")
            # Python 3.11's asyncio.wait_for (aiosmtplib awaits each reply with it) swallows a
            # cancellation that lands as the reply arrives; the request stays on the task.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_INTERVAL):
                    await self._woken.wait()

    def wake(self) -> None:
        """Deliver now: a transaction that queued email has committed."""
        self._woken.set()

    async def deliver_due(self) -> int:
        """Try each email due now once; how many were sent."""
        tried: list[int] = []
        sent = 0
        while (outcome := await self._deliver_one(tried)) is not None:
            sent += outcome
        return sent

    async def _deliver_one(self, tried: list[int]) -> bool | None:
        """Claim one due email and send it; whether it went, None when none is due."""
        async with self.db.transaction() as connection:
            row = await connection.fetchrow(_CLAIM, tried)
            if row is None:
                return None
            tried.append(row["id"])
            try:
                await self._send(row["id"], row["recipient"], self.cipher.decrypt(row["message"]))
            except Exception as exc:
                # The error, never the message: it holds a one-time link.
                error = f"{type(exc).__name__}: {exc}"[:1000]
                logger.warning("Email %d to %s not sent: %s", row["id"], row["recipient"], error)
                await connection.execute(_FAILED, row["id"], error)
                return False
            await connection.execute(_SENT, row["id"])
            return True

    async def _send(self, email_id: int, recipient: str, data: bytes) -> None:
        settings = self.settings
        if settings.smtp_host is None:
            path = settings.mail_outbox_dir / f"{email_id}.eml"
            await asyncio.to_thread(_write, path, data)
            logger.info("Email to %s written to %s", recipient, path)
            return
        message = message_from_bytes(data, policy=policy.SMTP)
        password = settings.smtp_password
        await aiosmtplib.send(
            message,
            recipients=[recipient],
            hostname=settings.smtp_host,
            port=settings.smtp_port or PORTS[settings.smtp_security],
            username=settings.smtp_username,
            password=password.get_secret_value() if password else None,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            timeout=settings.smtp_timeout,
        )
        logger.info("Email to %s sent: %s", recipient, message["Subject"])


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
