"""The audit log's table: security events, append-only."""

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

from ..database import metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("kind", Text, nullable=False),
    Column("actor", Text, nullable=False),  # user:<id>, token:<name>, jwt:<sub>, anonymous
    # No foreign key: the record outlives the user it is about.
    Column("subject_user_id", BigInteger),
    Column("client_address", Text),
    Column("request_id", Text),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Index("ix_audit_events_subject_user_id", "subject_user_id", "id"),
    Index("ix_audit_events_kind", "kind", "id"),
    # The console's counts and chart: events of a kind over the last day or month.
    Index("ix_audit_events_kind_at", "kind", "at"),
)
