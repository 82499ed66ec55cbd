"""L7 policies and rules, and their quotas

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _provisioned() -> list[sa.schema.SchemaItem]:
    """The columns every load-balancing object carries (models.ProvisionedMixin)."""
    return [
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.String(length=255), nullable=False),
        sa.Column('admin_state_up', sa.Boolean(), nullable=False),
        sa.Column('provisioning_status', sa.String(length=16), nullable=False),
        sa.Column('operating_status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    ]


def upgrade() -> None:
    op.create_table(
        'l7policy',
        sa.Column('listener_id', sa.String(length=36), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('redirect_pool_id', sa.String(length=36), nullable=True),
        sa.Column('redirect_url', sa.String(length=2048), nullable=True),
        sa.Column('redirect_prefix', sa.String(length=2048), nullable=True),
        sa.Column('redirect_http_code', sa.Integer(), nullable=True),
        *_provisioned(),
        sa.ForeignKeyConstraint(['listener_id'], ['listener.id'], ondelete='CASCADE'),
    )
    with op.batch_alter_table('l7policy', schema=None) as batch_op:
        batch_op.create_index('ix_l7policy_listener', ['listener_id', 'position'], unique=False)
        batch_op.create_index('ix_l7policy_redirect_pool', ['redirect_pool_id'], unique=False)
        batch_op.create_index('ix_l7policy_project_created', ['project_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_l7policy_created', ['created_at', 'id'], unique=False)
    op.create_table(
        'l7rule',
        sa.Column('l7policy_id', sa.String(length=36), nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('compare_type', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=True),
        sa.Column('value', sa.String(length=1024), nullable=False),
        sa.Column('invert', sa.Boolean(), nullable=False),
        *_provisioned(),
        sa.ForeignKeyConstraint(['l7policy_id'], ['l7policy.id'], ondelete='CASCADE'),
    )
    with op.batch_alter_table('l7rule', schema=None) as batch_op:
        batch_op.create_index('ix_l7rule_policy', ['l7policy_id'], unique=False)
        batch_op.create_index('ix_l7rule_project_created', ['project_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_l7rule_created', ['created_at', 'id'], unique=False)
    with op.batch_alter_table('quota', schema=None) as batch_op:
        batch_op.add_column(sa.Column('l7policy', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('l7rule', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('quota', schema=None) as batch_op:
        batch_op.drop_column('l7rule')
        batch_op.drop_column('l7policy')
    op.drop_table('l7rule')
    op.drop_table('l7policy')
