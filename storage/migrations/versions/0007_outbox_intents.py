"""outbox intents: rows say what they are about and are written when sent

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 11:30:00.000000

A row about an invitation, an action or a case is rendered by the dispatcher when it sends
it (bot.followups.render), in the contact's language then and for its channel, so
``text`` becomes optional and ``keyboard`` goes: only free staff messages carry a text.

Every row is kept. Rows still to be sent ("queued", or "sending" under a lease) that are
about a subject lose the text and keyboard planned for them and are re-rendered when sent:
what they say is then current (a language changed since, a comment typed after the score).
Rows without a subject keep their text and are sent as stored. Rows already sent, failed or
cancelled keep their text as the record of what was sent.

The downgrade cannot render: rows about a subject that are still to be sent are cancelled
with a reason (re-plan them: `sada invite` again, reminders and alerts are planned anew),
and every row without a text gets an empty one.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUBJECT = "(invitation_id IS NOT NULL OR action_id IS NOT NULL OR case_id IS NOT NULL)"
_PENDING = "status IN ('queued', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('text', existing_type=sa.Text(), nullable=True)
    op.execute(f"UPDATE outbox SET text = NULL WHERE {_PENDING} AND {_SUBJECT}")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('keyboard')


def downgrade() -> None:
    op.execute(
        "UPDATE outbox SET status = 'cancelled', locked_until = NULL, "
        "last_error = 'cancelled by a downgrade below 0007: it was to be written when sent' "
        f"WHERE {_PENDING} AND text IS NULL"
    )
    op.execute("UPDATE outbox SET text = '' WHERE text IS NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('keyboard', sa.JSON().with_variant(
            postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.alter_column('text', existing_type=sa.Text(), nullable=False)
