"""The database fixtures of the service tests (real PostgreSQL and SQLite, built by the migrations)."""

from tests.api.conftest import backend, postgres_url, redis_client, session, settings  # noqa: F401  # fixtures
