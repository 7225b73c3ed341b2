"""`moetune worker`: a Celery training worker (see `cli.service`)."""

from cli.service import add_worker_arguments as add_arguments
from cli.service import run_worker as run

__all__ = ["add_arguments", "run"]
