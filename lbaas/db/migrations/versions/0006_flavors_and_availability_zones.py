"""Flavors, availability zones and their profiles

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'flavor_profile',
        sa.Column('id', sa.String(length=36), primary_key=True),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('provider_name', sa.String(length=64), nullable=False),
        sa.Column('flavor_data', sa.JSON(), nullable=False),
    )
    op.create_table(
        'flavor',
        sa.Column('id', sa.String(length=36), primary_key=True),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('flavor_profile_id', sa.String(length=36), sa.ForeignKey('flavor_profile.id'), nullable=False),
        sa.UniqueConstraint('name', name='uq_flavor_name'),
    )
    op.create_index('ix_flavor_profile', 'flavor', ['flavor_profile_id'])
    op.create_table(
        'availability_zone_profile',
        sa.Column('id', sa.String(length=36), primary_key=True),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('provider_name', sa.String(length=64), nullable=False),
        sa.Column('availability_zone_data', sa.JSON(), nullable=False),
    )
    op.create_table(
        'availability_zone',
        sa.Column('name', sa.String(length=255), primary_key=True),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('availability_zone_profile_id', sa.String(length=36),
                  sa.ForeignKey('availability_zone_profile.id'), nullable=False),
    )
    op.create_index('ix_availability_zone_profile', 'availability_zone', ['availability_zone_profile_id'])


def downgrade() -> None:
    op.drop_index('ix_availability_zone_profile', table_name='availability_zone')
    op.drop_table('availability_zone')
    op.drop_table('availability_zone_profile')
    op.drop_index('ix_flavor_profile', table_name='flavor')
    op.drop_table('flavor')
    op.drop_table('flavor_profile')
