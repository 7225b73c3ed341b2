"""`moetune keys` needs the service's database fixtures."""

from tests.api.conftest import backend, client, postgres_url, redis_client, settings  # noqa: F401  # fixtures
