"""Runs that continue runs (continual pre-training, issue 14): the parent run and its step at
the branch, the domain a run's loss is measured on, and the replay share of the parent's data.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add several columns and indexes in place otherwise
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("domain", sa.String(256), nullable=True))
        batch.add_column(sa.Column("continues_run_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("continues_at_step", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("replay", sa.Float(), server_default="0", nullable=False))
        batch.create_index("ix_runs_domain", ["domain"])
        batch.create_index("ix_runs_continues_run_id", ["continues_run_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_continues_run_id")
        batch.drop_index("ix_runs_domain")
        batch.drop_column("replay")
        batch.drop_column("continues_at_step")
        batch.drop_column("continues_run_id")
        batch.drop_column("domain")
