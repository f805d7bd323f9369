"""What a media call made or read, on its usage record: `units` of `unit` (images, seconds of audio, characters).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # batch: SQLite alters a table by copying it
        batch.add_column(sa.Column("units", sa.Float(), nullable=True))
        batch.add_column(sa.Column("unit", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("unit")
        batch.drop_column("units")
