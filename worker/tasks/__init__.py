"""Celery tasks, registered by name (the API sends them without importing this package)."""
