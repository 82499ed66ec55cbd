"""TLS termination and re-encryption: key manager references on listeners and pools

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

REF = sa.String(length=1024)
CIPHERS = sa.String(length=2048)


def upgrade() -> None:
    with op.batch_alter_table('listener') as batch:
        batch.add_column(sa.Column('default_tls_container_ref', REF, nullable=True))
        batch.add_column(sa.Column('sni_container_refs', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('client_authentication', sa.String(length=16), nullable=False,
                                   server_default='NONE'))
        batch.add_column(sa.Column('client_ca_tls_container_ref', REF, nullable=True))
        batch.add_column(sa.Column('client_crl_container_ref', REF, nullable=True))
        batch.add_column(sa.Column('tls_versions', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('tls_ciphers', CIPHERS, nullable=True))
        batch.add_column(sa.Column('alpn_protocols', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('hsts_max_age', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('hsts_include_subdomains', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('hsts_preload', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('pool') as batch:
        batch.add_column(sa.Column('tls_container_ref', REF, nullable=True))
        batch.add_column(sa.Column('ca_tls_container_ref', REF, nullable=True))
        batch.add_column(sa.Column('crl_container_ref', REF, nullable=True))
        batch.add_column(sa.Column('tls_versions', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('tls_ciphers', CIPHERS, nullable=True))
        batch.add_column(sa.Column('alpn_protocols', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pool') as batch:
        for name in ('alpn_protocols', 'tls_ciphers', 'tls_versions', 'crl_container_ref',
                     'ca_tls_container_ref', 'tls_container_ref'):
            batch.drop_column(name)
    with op.batch_alter_table('listener') as batch:
        for name in ('hsts_preload', 'hsts_include_subdomains', 'hsts_max_age', 'alpn_protocols',
                     'tls_ciphers', 'tls_versions', 'client_crl_container_ref',
                     'client_ca_tls_container_ref', 'client_authentication', 'sni_container_refs',
                     'default_tls_container_ref'):
            batch.drop_column(name)
