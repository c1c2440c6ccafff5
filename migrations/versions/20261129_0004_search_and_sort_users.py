"""users: created_at, trigram search indexes on names and emails

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from user_service.migrations import create_extension

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_extension("pg_trgm")  # gin_trgm_ops: ILIKE '%…%' served by an index
    # now() is stable, so PostgreSQL 11+ adds the column without rewriting the table;
    # existing users all get the migration's time (and sort among themselves by id).
    op.add_column(
        "users",
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_users_nickname_trgm",
        "users",
        ["nickname"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"nickname": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_accounts_email_trgm",
        "accounts",
        ["email"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )


def downgrade() -> None:
    # pg_trgm stays: other schemas in the database may use it.
    op.drop_index("ix_accounts_email_trgm", table_name="accounts")
    op.drop_index("ix_users_nickname_trgm", table_name="users")
    op.drop_index("ix_users_created_at_id", table_name="users")
    op.drop_column("users", "created_at")
