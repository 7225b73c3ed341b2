"""The HTTP API. `api.settings` is imported by the worker too, so this package imports nothing at load."""
