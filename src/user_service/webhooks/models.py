"""The webhooks' tables, defined once: Alembic compares migrations against them.

An event is written with the change that causes it (events.queue), then fanned out to one
delivery per endpoint subscribed to it (repository.fan_out); a delivery is pending until an
attempt gets a 2xx, or until it has been retried for WEBHOOK_RETRY_FOR. Each attempt is
kept, for the API and the console."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from ..database import metadata

_NOW = func.now()

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text),  # why delivery stopped (a 410 Gone), if it did
    # Encrypted (crypto.Cipher): what signs its events. After a rotation the previous secret
    # signs too, until previous_secret_until.
    Column("secret", LargeBinary, nullable=False),
    Column("previous_secret", LargeBinary),
    Column("previous_secret_until", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
)

# Written by the change (one narrow row: it is on the path of every write), then fanned out
# to a delivery per endpoint subscribed by the deliverer, in `seq` order.
webhook_events = Table(
    "webhook_events",
    metadata,
    # The webhook-id header: msg_ and 32 hex digits.
    Column(
        "id", Text, primary_key=True, server_default=text("'msg_' || md5(gen_random_uuid()::text)")
    ),
    Column("seq", BigInteger, Identity(), nullable=False),  # the order of the changes
    Column("type", Text, nullable=False),
    Column("subject_user_id", BigInteger),  # no foreign key: a deleted user's events live on
    # The user's row as the change left it; once fanned out, the body sent: {"type",
    # "timestamp", "data"}.
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("fanned_out", Boolean, nullable=False, server_default=text("false")),
    Index("ix_webhook_events_waiting", "seq", postgresql_where=text("NOT fanned_out")),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),  # the order events were queued in
    Column("webhook_id", BigInteger, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Text, ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False),
    Column("subject_user_id", BigInteger),  # one user's events reach an endpoint in order
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status", Integer),  # the receiver's HTTP status
    Column("last_error", Text),  # or why there was none
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    UniqueConstraint("webhook_id", "event_id"),
    CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
    Index(
        "ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")
    ),
    Index(
        "ix_webhook_deliveries_pending_subject",
        "webhook_id",
        "subject_user_id",
        "id",
        postgresql_where=text("state = 'pending'"),
    ),
    Index("ix_webhook_deliveries_event_id", "event_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("status", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_webhook_attempts_delivery_id", "delivery_id"),
)
