"""Celery workers: training jobs (and, later, inference) on the machines that have the GPUs."""
