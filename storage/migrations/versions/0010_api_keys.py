"""api keys: one per integration calling the HTTP API

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 12:20:00.000000

``api_key`` keeps a name, the key's visible prefix, a hash of its secret (never the secret),
its scopes and when it was created, last used and revoked. A name is unique among keys not
revoked, so an integration's key can be rotated under the same name.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'api_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('prefix', sa.String(), nullable=False),
        sa.Column('hash', sa.String(), nullable=False),
        sa.Column('scopes', sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_key')),
        sa.UniqueConstraint('prefix', name=op.f('uq_api_key_prefix')),
    )
    op.create_index(op.f('ix_api_key_name'), 'api_key', ['name'], unique=True,
                    sqlite_where=sa.text('revoked_at IS NULL'),
                    postgresql_where=sa.text('revoked_at IS NULL'))


def downgrade() -> None:
    op.drop_index(op.f('ix_api_key_name'), table_name='api_key')
    op.drop_table('api_key')
