"""`moetune up` (the embedded service: API, training worker and inference server in one command),
`moetune worker`, `moetune db upgrade`.

Embedded mode needs no server: the database is a SQLite file and the Celery broker is Kombu's
SQLAlchemy transport on another SQLite file (the defaults of `api.settings.Settings`, under
`./.moetune`). Production points `MOETUNE_DATABASE_URL` at PostgreSQL and `MOETUNE_BROKER_URL`
at Redis, and runs `moetune worker` on each GPU machine (one process per GPU).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--inference-port", type=int, default=None, help="default: --port + 1")
    parser.add_argument("--no-worker", action="store_true", help="run the API only")


def worker_command(queues: str = "training,control", beat: bool = True, pool: str = "solo") -> list[str]:
    """The Celery worker: one task at a time (one process per GPU), prefetch 1, the reaper's beat."""
    command = [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker", "-Q", queues,
               "--pool", pool, "--concurrency", "1", "--prefetch-multiplier", "1", "--loglevel", "INFO"]  # fmt: skip
    if beat:
        from api.settings import Settings

        schedule = Settings().storage_dir.parent / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        command += ["-B", "--schedule", str(schedule)]
    return command


def run(args: argparse.Namespace) -> int:
    from api.settings import Settings
    from db.migrate import upgrade_database

    settings = Settings()
    settings.storage_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
    inference_port = args.inference_port or args.port + 1
    env = dict(os.environ, MOETUNE_INFERENCE_URL=f"http://127.0.0.1:{inference_port}")
    api = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", args.host,
           "--port", str(args.port)]  # fmt: skip
    processes = [subprocess.Popen(api, env=env)]
    if not args.no_worker:
        inference = [sys.executable, "-m", "uvicorn", "worker.inference.server:create_inference_app", "--factory",
                     "--host", "127.0.0.1", "--port", str(inference_port)]  # fmt: skip
        processes += [subprocess.Popen(worker_command(), env=env), subprocess.Popen(inference, env=env)]
    print(f"moetune: API on http://{args.host}:{args.port}/v1 (database {settings.database_url})", flush=True)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.5)
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    failed = [p.returncode for p in processes if p.returncode not in (0, -signal.SIGTERM, None)]
    return 1 if failed and not stopping else 0


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queues", default="training,control")
    parser.add_argument(
        "--beat", action="store_true", help="also run the reaper's schedule (one per cluster)"
    )
    parser.add_argument("--pool", default="prefork", help="prefork isolates each job in a child process")


def run_worker(args: argparse.Namespace) -> int:
    os.execv(sys.executable, worker_command(args.queues, args.beat, args.pool))
    return 0  # not reached


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="db_command", required=True)
    sub.add_parser("upgrade", help="apply the Alembic migrations to MOETUNE_DATABASE_URL")


def run_db(args: argparse.Namespace) -> int:
    from api.settings import Settings
    from db.migrate import upgrade_database

    upgrade_database(Settings().database_url)
    return 0
