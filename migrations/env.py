"""Alembic environment. Scambio runs migrations on a connection it passes in through
`config.attributes["connection"]` (see `scambio.store.migrate`), because Alembic cannot
start its own event loop inside the service's running one."""

from __future__ import annotations

from alembic import context

from scambio.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `scambio db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
