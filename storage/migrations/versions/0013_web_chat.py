"""web chat: visitors of the web channel and their conversations

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 13:40:00.000000

``web_visitor`` is one browser of the web chat (its id is its address on channel "web") and
the links and flows it has opened; ``web_message`` is each visitor's conversation as the
browser receives it, numbered by ``seq`` so a stream resumes after the last one it got.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'web_visitor',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('language', sa.String(), nullable=True),
        sa.Column('opened', sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_web_visitor')),
    )
    op.create_table(
        'web_message',
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('visitor_id', sa.String(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(), nullable=False),
        sa.Column('body', sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['visitor_id'], ['web_visitor.id'],
                                name=op.f('fk_web_message_visitor_id_web_visitor'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_web_message')),
    )
    op.create_index(op.f('ix_web_message_visitor_id_seq'), 'web_message',
                    ['visitor_id', 'seq'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_web_message_visitor_id_seq'), table_name='web_message')
    op.drop_table('web_message')
    op.drop_table('web_visitor')
