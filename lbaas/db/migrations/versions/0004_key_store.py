"""The local key store: secrets (payload encrypted) and containers

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

PAYLOAD = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')


def upgrade() -> None:
    op.create_table(
        'key_secret',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('secret_type', sa.String(length=32), nullable=False),
        sa.Column('payload_content_type', sa.String(length=255), nullable=True),
        sa.Column('algorithm', sa.String(length=255), nullable=True),
        sa.Column('bit_length', sa.Integer(), nullable=True),
        sa.Column('mode', sa.String(length=255), nullable=True),
        sa.Column('expiration', sa.DateTime(), nullable=True),
        sa.Column('encrypted_payload', PAYLOAD, nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_key_secret_project_created', 'key_secret', ['project_id', 'created_at', 'id'])
    op.create_table(
        'key_container',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('type', sa.String(length=16), nullable=False),
        sa.Column('secret_refs', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_key_container_project_created', 'key_container', ['project_id', 'created_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_key_container_project_created', table_name='key_container')
    op.drop_table('key_container')
    op.drop_index('ix_key_secret_project_created', table_name='key_secret')
    op.drop_table('key_secret')
