"""agent instance and device state, why a load balancer failed

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instance_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('device_up', sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table('load_balancer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_kind', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('load_balancer', schema=None) as batch_op:
        batch_op.drop_column('error_kind')
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.drop_column('device_up')
        batch_op.drop_column('instance_id')
