"""initial schema

Revision ID: 0001
Revises: 
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('environment_group', sa.Integer(), nullable=False),
    sa.Column('device_driver', sa.String(length=64), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('configurations', sa.JSON(), nullable=False),
    sa.Column('capacity_score', sa.Float(), nullable=False),
    sa.Column('loadbalancer_count', sa.Integer(), nullable=False),
    sa.Column('alive_seen', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('environment', 'host', name='uq_agent_environment_host')
    )
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.create_index('ix_agent_environment', ['environment', 'environment_group', 'heartbeat_at'], unique=False)

    op.create_table('load_balancer',
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('vip_address', sa.String(length=64), nullable=True),
    sa.Column('vip_subnet_id', sa.String(length=255), nullable=True),
    sa.Column('vip_network_id', sa.String(length=255), nullable=True),
    sa.Column('vip_port_id', sa.String(length=255), nullable=True),
    sa.Column('flavor_id', sa.String(length=255), nullable=True),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('pending_since', sa.DateTime(), nullable=True),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('stats', sa.JSON(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('provisioning_status', sa.String(length=16), nullable=False),
    sa.Column('operating_status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('load_balancer', schema=None) as batch_op:
        batch_op.create_index('ix_load_balancer_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_load_balancer_name', ['name'], unique=False)
        batch_op.create_index('ix_load_balancer_pending', ['provisioning_status', 'pending_since'], unique=False)
        batch_op.create_index('ix_load_balancer_project_created', ['project_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_load_balancer_vip_address', ['vip_address'], unique=False)

    op.create_table('project_lock',
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('environment', 'project_id')
    )
    op.create_table('quota',
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('load_balancer', sa.Integer(), nullable=True),
    sa.Column('listener', sa.Integer(), nullable=True),
    sa.Column('pool', sa.Integer(), nullable=True),
    sa.Column('member', sa.Integer(), nullable=True),
    sa.Column('health_monitor', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('project_id')
    )
    op.create_table('tag',
    sa.Column('resource_id', sa.String(length=36), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('resource_id', 'tag')
    )
    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.create_index('ix_tag_tag', ['tag', 'resource_id'], unique=False)

    op.create_table('binding',
    sa.Column('loadbalancer_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agent.id'], ),
    sa.ForeignKeyConstraint(['loadbalancer_id'], ['load_balancer.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('loadbalancer_id')
    )
    with op.batch_alter_table('binding', schema=None) as batch_op:
        batch_op.create_index('ix_binding_affinity', ['environment', 'project_id', 'agent_id'], unique=False)
        batch_op.create_index('ix_binding_agent', ['agent_id'], unique=False)

    op.create_table('listener',
    sa.Column('load_balancer_id', sa.String(length=36), nullable=False),
    sa.Column('protocol', sa.String(length=32), nullable=False),
    sa.Column('protocol_port', sa.Integer(), nullable=False),
    sa.Column('vip_address', sa.String(length=64), nullable=False),
    sa.Column('connection_limit', sa.Integer(), nullable=False),
    sa.Column('default_pool_id', sa.String(length=36), nullable=True),
    sa.Column('timeout_client_data', sa.Integer(), nullable=False),
    sa.Column('timeout_member_connect', sa.Integer(), nullable=False),
    sa.Column('timeout_member_data', sa.Integer(), nullable=False),
    sa.Column('timeout_tcp_inspect', sa.Integer(), nullable=False),
    sa.Column('insert_headers', sa.JSON(), nullable=False),
    sa.Column('allowed_cidrs', sa.JSON(), nullable=True),
    sa.Column('stats', sa.JSON(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('provisioning_status', sa.String(length=16), nullable=False),
    sa.Column('operating_status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['load_balancer_id'], ['load_balancer.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vip_address', 'protocol_port', name='uq_listener_vip_port')
    )
    with op.batch_alter_table('listener', schema=None) as batch_op:
        batch_op.create_index('ix_listener_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_listener_default_pool', ['default_pool_id'], unique=False)
        batch_op.create_index('ix_listener_lb', ['load_balancer_id'], unique=False)
        batch_op.create_index('ix_listener_project_created', ['project_id', 'created_at', 'id'], unique=False)

    op.create_table('pool',
    sa.Column('load_balancer_id', sa.String(length=36), nullable=False),
    sa.Column('protocol', sa.String(length=32), nullable=False),
    sa.Column('lb_algorithm', sa.String(length=32), nullable=False),
    sa.Column('session_persistence', sa.JSON(), nullable=True),
    sa.Column('tls_enabled', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('provisioning_status', sa.String(length=16), nullable=False),
    sa.Column('operating_status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['load_balancer_id'], ['load_balancer.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pool', schema=None) as batch_op:
        batch_op.create_index('ix_pool_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_pool_lb', ['load_balancer_id'], unique=False)
        batch_op.create_index('ix_pool_project_created', ['project_id', 'created_at', 'id'], unique=False)

    op.create_table('health_monitor',
    sa.Column('pool_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('delay', sa.Integer(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('max_retries_down', sa.Integer(), nullable=False),
    sa.Column('http_method', sa.String(length=16), nullable=True),
    sa.Column('url_path', sa.String(length=2048), nullable=True),
    sa.Column('expected_codes', sa.String(length=64), nullable=True),
    sa.Column('http_version', sa.Float(), nullable=True),
    sa.Column('domain_name', sa.String(length=255), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('provisioning_status', sa.String(length=16), nullable=False),
    sa.Column('operating_status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['pool_id'], ['pool.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('pool_id')
    )
    with op.batch_alter_table('health_monitor', schema=None) as batch_op:
        batch_op.create_index('ix_health_monitor_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_health_monitor_project_created', ['project_id', 'created_at', 'id'], unique=False)

    op.create_table('member',
    sa.Column('pool_id', sa.String(length=36), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('protocol_port', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('backup', sa.Boolean(), nullable=False),
    sa.Column('subnet_id', sa.String(length=255), nullable=True),
    sa.Column('monitor_address', sa.String(length=64), nullable=True),
    sa.Column('monitor_port', sa.Integer(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('provisioning_status', sa.String(length=16), nullable=False),
    sa.Column('operating_status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['pool_id'], ['pool.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('pool_id', 'address', 'protocol_port', name='uq_member_address_port')
    )
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index('ix_member_project_created', ['project_id', 'created_at', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index('ix_member_project_created')

    op.drop_table('member')
    with op.batch_alter_table('health_monitor', schema=None) as batch_op:
        batch_op.drop_index('ix_health_monitor_project_created')
        batch_op.drop_index('ix_health_monitor_created')

    op.drop_table('health_monitor')
    with op.batch_alter_table('pool', schema=None) as batch_op:
        batch_op.drop_index('ix_pool_project_created')
        batch_op.drop_index('ix_pool_lb')
        batch_op.drop_index('ix_pool_created')

    op.drop_table('pool')
    with op.batch_alter_table('listener', schema=None) as batch_op:
        batch_op.drop_index('ix_listener_project_created')
        batch_op.drop_index('ix_listener_lb')
        batch_op.drop_index('ix_listener_default_pool')
        batch_op.drop_index('ix_listener_created')

    op.drop_table('listener')
    with op.batch_alter_table('binding', schema=None) as batch_op:
        batch_op.drop_index('ix_binding_agent')
        batch_op.drop_index('ix_binding_affinity')

    op.drop_table('binding')
    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.drop_index('ix_tag_tag')

    op.drop_table('tag')
    op.drop_table('quota')
    op.drop_table('project_lock')
    with op.batch_alter_table('load_balancer', schema=None) as batch_op:
        batch_op.drop_index('ix_load_balancer_vip_address')
        batch_op.drop_index('ix_load_balancer_project_created')
        batch_op.drop_index('ix_load_balancer_pending')
        batch_op.drop_index('ix_load_balancer_name')
        batch_op.drop_index('ix_load_balancer_created')

    op.drop_table('load_balancer')
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_environment')

    op.drop_table('agent')
