"""accounts: email_key, the one form addresses are compared in (unique in its place of email)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from user_service.addresses import key

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("email_key", sa.Text(), nullable=True))
    connection = op.get_bind()
    # Computed here, by the function the service uses: PostgreSQL's lower() (citext's) and
    # Python's disagree on some letters (U+0130), and the service's is the one that counts.
    accounts = connection.execute(sa.text("SELECT user_id, email FROM accounts")).all()
    for user_id, email in accounts:
        connection.execute(
            sa.text("UPDATE accounts SET email_key = :key WHERE user_id = :user_id"),
            {"key": key(email), "user_id": user_id},
        )
    op.alter_column("accounts", "email_key", nullable=False)
    op.create_unique_constraint(op.f("uq_accounts_email_key"), "accounts", ["email_key"])
    op.drop_constraint(op.f("uq_accounts_email"), "accounts", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint(op.f("uq_accounts_email"), "accounts", ["email"])
    op.drop_constraint(op.f("uq_accounts_email_key"), "accounts", type_="unique")
    op.drop_column("accounts", "email_key")
