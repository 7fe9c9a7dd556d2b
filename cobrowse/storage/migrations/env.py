"""Alembic environment for cobrowse (async engines).

Normally :meth:`cobrowse.storage.Database.start` runs the migrations and passes
its own connection in ``config.attributes["connection"]`` (the "connection
sharing" recipe from Alembic's cookbook, on the sync connection handed out by
``AsyncConnection.run_sync``). Without one (a developer running Alembic
commands, see ``python -m cobrowse.storage``), this file creates an async
engine from ``sqlalchemy.url`` and does the same through ``run_sync``.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import chat.models  # noqa: F401  (the chat tables live on the same Base)
from cobrowse.storage.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: object, autogen_context) -> str | bool:
    # Migrations must not import the models (they change later): render our
    # TypeDecorator as the plain type it stands for.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_item=render_item,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """``--sql`` mode: print the SQL instead of running it."""
    url = config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
               render_as_batch=url is not None and url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: sa.Connection) -> None:
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    from cobrowse.storage.db import _async_url, _sqlite_on_begin, _sqlite_on_connect

    url = _async_url(config.get_main_option("sqlalchemy.url"))
    engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
