"""outbox delivery: what the channel reported of a message after it was sent

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:00:00.000000

WhatsApp reports each message's fate by webhook (sent, delivered, read, failed): the row
keeps the latest with its time and a failure's error. ``message_id`` widens to 64 bits:
WhatsApp's message numbers (transport.message_number) take 63. Every row is kept; rows sent
before this know no delivery (NULL).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('message_id', existing_type=sa.Integer(),
                              type_=sa.BigInteger(), existing_nullable=True)
        batch_op.add_column(sa.Column('delivery', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('delivery_at', UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('delivery_error', sa.String(), nullable=True))


def downgrade() -> None:
    # A 64-bit message number does not fit the narrower column: forgotten, as before 0008
    # nothing read it after sending.
    op.execute("UPDATE outbox SET message_id = NULL "
               "WHERE message_id > 2147483647 OR message_id < -2147483648")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('delivery_error')
        batch_op.drop_column('delivery_at')
        batch_op.drop_column('delivery')
        batch_op.alter_column('message_id', existing_type=sa.BigInteger(),
                              type_=sa.Integer(), existing_nullable=True)
