"""inbound update: long polling's updates kept until handled; responses by time

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 16:30:00.000000

``inbound_update`` holds each update long polling took and has not handled yet. It is
committed before the next getUpdates confirms the update to Telegram, so the offset moves
on at once (a long poll is a real long poll again) and a crash loses nothing: the next
start handles what is left here first (storage/inbox.py). Rows are deleted once handled.

``survey_session`` gets an index on (last_activity_at, id): the API's responses endpoint
pages through sessions in that order, and without it every page read the whole table.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0015'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'inbound_update',
        sa.Column('source', sa.String(), nullable=False),
        sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('payload', sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('source', 'update_id', name=op.f('pk_inbound_update')),
    )
    op.create_index(op.f('ix_survey_session_last_activity_at_id'), 'survey_session',
                    ['last_activity_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_survey_session_last_activity_at_id'), table_name='survey_session')
    op.drop_table('inbound_update')
