"""Initial schema: tenants, API keys, files, jobs, events, metrics, checkpoints, models, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of db.base's portable types: a migration must not change when the models do.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _job_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["job_id"], ["jobs.id"], name=f"fk_{table}_job_id_jobs", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        _time("created_at"),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        _time("revoked_at", nullable=True),
        _tenant_fk("api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])

    op.create_table(
        "files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_details", sa.Text(), nullable=True),
        sa.Column("storage_path", sa.String(512), nullable=False),
        _time("created_at"),
        _time("deleted_at", nullable=True),
        _tenant_fk("files"),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
    )
    op.create_index("ix_files_tenant_id_created_at", "files", ["tenant_id", "created_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("training_file_id", sa.String(40), nullable=False),
        sa.Column("validation_file_id", sa.String(40), nullable=True),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("metadata", JSON, nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("fine_tuned_model", sa.String(400), nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("trained_tokens", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("epoch", sa.Float(), nullable=True),
        sa.Column("eta_seconds", sa.Float(), nullable=True),
        _time("created_at"),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _time("lease_expires_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _tenant_fk("jobs"),
        sa.ForeignKeyConstraint(["training_file_id"], ["files.id"], name="fk_jobs_training_file_id_files"),
        sa.ForeignKeyConstraint(
            ["validation_file_id"], ["files.id"], name="fk_jobs_validation_file_id_files"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_tenant_id_created_at", "jobs", ["tenant_id", "created_at"])
    op.create_index("ix_jobs_status_lease_expires_at", "jobs", ["status", "lease_expires_at"])

    op.create_table(
        "job_events",
        sa.Column("seq", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        _time("created_at"),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=True),
        _job_fk("job_events"),
        sa.PrimaryKeyConstraint("seq", name="pk_job_events"),
        sa.UniqueConstraint("id", name="uq_job_events_id"),
    )
    op.create_index("ix_job_events_job_id_seq", "job_events", ["job_id", "seq"])

    op.create_table(
        "job_metrics",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("record", JSON, nullable=False),
        _time("created_at"),
        _job_fk("job_metrics"),
        sa.PrimaryKeyConstraint("id", name="pk_job_metrics"),
        sa.UniqueConstraint("job_id", "step", name="uq_job_metrics_job_id_step"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        _time("created_at"),
        _job_fk("checkpoints"),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoints"),
        sa.UniqueConstraint("job_id", "step", name="uq_checkpoints_job_id_step"),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(400), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("parent", sa.String(200), nullable=False),
        sa.Column("adapter_path", sa.String(512), nullable=False),
        _time("created_at"),
        _tenant_fk("models"),
        _job_fk("models"),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("job_id", name="uq_models_job_id"),
    )
    op.create_index("ix_models_tenant_id", "models", ["tenant_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        _time("created_at"),
        _tenant_fk("idempotency_keys"),
        _job_fk("idempotency_keys"),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "models", "checkpoints", "job_metrics", "job_events", "jobs", "files"):
        op.drop_table(table)
    op.drop_table("api_keys")
    op.drop_table("tenants")
