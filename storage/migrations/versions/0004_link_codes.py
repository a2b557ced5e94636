"""link codes: a personal link that asks its opener for a code before merging

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401  (autogenerate writes sqlmodel types without importing them)
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('link_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('code_chat', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('code_asked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('code_failures', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index(batch_op.f('ix_link_token_code_chat'), ['code_chat'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('link_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_token_code_chat'))
        batch_op.drop_column('code_failures')
        batch_op.drop_column('code_asked_at')
        batch_op.drop_column('code_chat')
        batch_op.drop_column('code_hash')
