"""initial schema: contact, flow_version, survey_session, answer

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:52:10.036140

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sqlmodel types without importing them)
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from storage.models: a migration must keep
# describing the schema as it was, whatever the models become.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("first_name", sa.String(), nullable=True),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("company", sa.String(), nullable=True),
        sa.Column("role", sa.String(), nullable=True),
        sa.Column("segment", sa.String(), nullable=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint(
            "channel", "external_id", name=op.f("uq_contact_channel_external_id")
        ),
    )
    op.create_table(
        "flow_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("title", sa.String(), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_version")),
        sa.UniqueConstraint(
            "flow_id", "content_hash", name=op.f("uq_flow_version_flow_id_content_hash")
        ),
    )
    op.create_index(op.f("ix_flow_version_flow_id"), "flow_version", ["flow_id"])

    op.create_table(
        "survey_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("flow_version_id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("position", sa.String(), nullable=True),
        sa.Column("state", JSON, nullable=False),
        sa.Column("context", JSON, nullable=False),
        _timestamp("started_at"),
        _timestamp("last_activity_at"),
        _timestamp("completed_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_survey_session_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flow_version_id"],
            ["flow_version.id"],
            name=op.f("fk_survey_session_flow_version_id_flow_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_session")),
    )
    op.create_index(
        op.f("ix_survey_session_contact_id_flow_id_status"),
        "survey_session",
        ["contact_id", "flow_id", "status"],
    )
    op.create_index(op.f("ix_survey_session_flow_id"), "survey_session", ["flow_id"])

    op.create_table(
        "answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        _timestamp("answered_at"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["survey_session.id"],
            name=op.f("fk_answer_session_id_survey_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer")),
        sa.UniqueConstraint(
            "session_id", "question_id", name=op.f("uq_answer_session_id_question_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("answer")
    op.drop_index(op.f("ix_survey_session_flow_id"), table_name="survey_session")
    op.drop_index(op.f("ix_survey_session_contact_id_flow_id_status"), table_name="survey_session")
    op.drop_table("survey_session")
    op.drop_index(op.f("ix_flow_version_flow_id"), table_name="flow_version")
    op.drop_table("flow_version")
    op.drop_table("contact")
