"""Alembic environment: runs migrations online against the URL the service passes in.

On PostgreSQL an advisory lock serialises migrations, because on the scale path the receiver and
the API start side by side and both bring the schema up to date.
"""

from alembic import context
from sqlalchemy import create_engine, text

from qcgate.store.tables import Base

MIGRATION_LOCK_ID = 0x7163676174  # "qcgat"

url = context.config.get_main_option("sqlalchemy.url") or ""
engine = create_engine(url)
with engine.connect() as connection:
    serialise = connection.dialect.name == "postgresql"
    if serialise:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    if serialise:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
engine.dispose()
