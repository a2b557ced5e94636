"""send rate: the shared pacing of sends when several processes run one bot

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 14:35:00.000000

``send_rate`` holds one row per channel and one per chat a process sent to lately: the
"theoretical arrival time" (GCRA) of its next message, in seconds of the database's clock.
Every process reserves its sends here with one UPDATE … RETURNING, so N processes together
stay under the channel's limits (bot/followups/shared_rate.py). Rows are disposable.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'send_rate',
        sa.Column('key', sa.String(), nullable=False),
        sa.Column('tat', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_send_rate')),
    )


def downgrade() -> None:
    op.drop_table('send_rate')
