"""Runs, fits and the fits' run snapshots: the schema as it shipped before migrations
(``Base.metadata.create_all`` of schema version 2), so databases made then are stamped here.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fits",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("law", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fits_created_at", "fits", ["created_at"])
    op.create_index("ix_fits_law", "fits", ["law"])
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("group_name", sa.String(256), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("lr_source", sa.String(16), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=True),
        sa.Column("lr_per_step", sa.LargeBinary(), nullable=True),
        sa.Column("steps", sa.LargeBinary(), nullable=False),
        sa.Column("loss", sa.LargeBinary(), nullable=False),
        sa.Column("point_lr", sa.LargeBinary(), nullable=True),
        sa.Column("num_points", sa.Integer(), nullable=False),
        sa.Column("first_step", sa.Integer(), nullable=False),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_group_name", "runs", ["group_name"])
    op.create_index("ix_runs_name", "runs", ["name"])
    op.create_table(
        "fit_runs",
        sa.Column("fit_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lr_source", sa.String(16), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=False),
        sa.Column("lr_sha256", sa.String(64), nullable=False),
        sa.Column("points_sha256", sa.String(64), nullable=False),
        sa.Column("steps", sa.LargeBinary(), nullable=False),
        sa.Column("loss", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["fit_id"], ["fits.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("fit_id", "position"),
    )
    op.create_index("ix_fit_runs_run_id", "fit_runs", ["run_id"])


def downgrade() -> None:
    op.drop_table("fit_runs")
    op.drop_table("runs")
    op.drop_table("fits")
