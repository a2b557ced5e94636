"""identities: a contact has an identity per channel address; outbox rows name an address

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:40:00.000000

Each contact that had a chat (any channel but "external") keeps it as its one identity, with
its reachability; its external_id, which was that chat's id, becomes NULL. Contacts imported
without a chat ("external") keep their external_id, the company's own id, and have no
identity. Outbox rows keep their chat as a text address.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'contact_identity',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(), nullable=False),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('unreachable', sa.Boolean(), nullable=False),
        sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['contact_id'], ['contact.id'],
                                name=op.f('fk_contact_identity_contact_id_contact'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_identity')),
        sa.UniqueConstraint('channel', 'address',
                            name=op.f('uq_contact_identity_channel_address')),
    )
    with op.batch_alter_table('contact_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_identity_contact_id'), ['contact_id'],
                              unique=False)
    op.execute(
        "INSERT INTO contact_identity (contact_id, channel, address, unreachable, created_at) "
        "SELECT id, channel, external_id, unreachable, created_at FROM contact "
        "WHERE channel <> 'external'"
    )

    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_constraint('uq_contact_channel_external_id', type_='unique')
        batch_op.alter_column('external_id', existing_type=sa.String(), nullable=True)
        batch_op.add_column(sa.Column('preferred_channel', sa.String(), nullable=True))
    # a chat's id was the key of a chat's contact, not an id the company gave it
    op.execute("UPDATE contact SET external_id = NULL WHERE channel <> 'external'")
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_column('channel')
        batch_op.drop_column('unreachable')
        batch_op.create_unique_constraint(batch_op.f('uq_contact_external_id'), ['external_id'])

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.Text(), nullable=True))
    op.execute("UPDATE outbox SET address = CAST(chat_id AS TEXT)")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('address', existing_type=sa.Text(), nullable=False)
        batch_op.drop_column('chat_id')
    # A link's code is awaited from a chat named with its channel now: Bale and Telegram
    # chats may share ids. Codes asked for before the upgrade were asked on Telegram.
    op.execute("UPDATE link_token SET code_chat = 'telegram:' || code_chat "
               "WHERE code_chat IS NOT NULL")


def downgrade() -> None:
    """Back to one (channel, id) per contact. Lossy where the new schema says more: a contact
    keeps one identity (its preferred channel's, else its first), its company id is kept only
    when it had no identity; outbox rows to an address that is not a number are dropped."""
    op.execute("UPDATE link_token SET code_chat = NULL, code_asked_at = NULL "
               "WHERE code_chat NOT LIKE 'telegram:%'")
    op.execute("UPDATE link_token SET code_chat = substr(code_chat, 10) "
               "WHERE code_chat IS NOT NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_id', sa.BigInteger(), nullable=True))
    numeric = ("address <> '' AND trim(address, '-0123456789') = ''"
               if op.get_bind().dialect.name == 'sqlite' else "address ~ '^-?[0-9]+$'")
    op.execute(f"DELETE FROM outbox WHERE NOT ({numeric})")
    op.execute("UPDATE outbox SET chat_id = CAST(address AS BIGINT)")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('chat_id', existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column('address')

    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_constraint('uq_contact_external_id', type_='unique')
        batch_op.add_column(sa.Column('channel', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('unreachable', sa.Boolean(), nullable=True))
    kept = (
        "COALESCE((SELECT MIN(i.id) FROM contact_identity i WHERE i.contact_id = contact.id "
        "AND i.channel = contact.preferred_channel), (SELECT MIN(i.id) FROM contact_identity i "
        "WHERE i.contact_id = contact.id))"
    )
    op.execute(
        "UPDATE contact SET "
        f"channel = COALESCE((SELECT channel FROM contact_identity WHERE id = {kept}), "
        "'external'), "
        f"external_id = COALESCE((SELECT address FROM contact_identity WHERE id = {kept}), "
        "external_id, 'contact-' || CAST(id AS TEXT)), "
        f"unreachable = COALESCE((SELECT unreachable FROM contact_identity WHERE id = {kept}), "
        "false)"
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.alter_column('channel', existing_type=sa.String(), nullable=False)
        batch_op.alter_column('unreachable', existing_type=sa.Boolean(), nullable=False)
        batch_op.alter_column('external_id', existing_type=sa.String(), nullable=False)
        batch_op.drop_column('preferred_channel')
        batch_op.create_unique_constraint('uq_contact_channel_external_id',
                                          ['channel', 'external_id'])
    with op.batch_alter_table('contact_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_identity_contact_id'))
    op.drop_table('contact_identity')
