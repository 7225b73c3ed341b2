"""`moetune db upgrade`: apply the migrations (see `cli.service`)."""

from cli.service import add_db_arguments as add_arguments
from cli.service import run_db as run

__all__ = ["add_arguments", "run"]
