"""Persistence: ORM tables, engine/session setup, migrations and the queries the service needs."""
