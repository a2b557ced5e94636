"""survey sessions: the message showing the question takes a 64-bit number

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:05:00.000000

``survey_session.prompt_message_id`` is the channel's number of the message showing the
current question. WhatsApp's message numbers (transport.message_number) take 63 bits:
PostgreSQL refused them in a 32-bit column, so a WhatsApp answer could not be stored. Every
row is kept as it is.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('survey_session', schema=None) as batch_op:
        batch_op.alter_column('prompt_message_id', existing_type=sa.Integer(),
                              type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    # A 64-bit number does not fit the narrower column: forgotten, so the question is shown
    # again as a new message rather than edited.
    op.execute("UPDATE survey_session SET prompt_message_id = NULL "
               "WHERE prompt_message_id > 2147483647 OR prompt_message_id < -2147483648")
    with op.batch_alter_table('survey_session', schema=None) as batch_op:
        batch_op.alter_column('prompt_message_id', existing_type=sa.BigInteger(),
                              type_=sa.Integer(), existing_nullable=True)
