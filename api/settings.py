"""The one settings class of the service (API, worker, CLI); each field reads `MOETUNE_<FIELD>`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 2**20


class Settings(BaseSettings):
    """Defaults give the embedded mode (SQLite files under `./.moetune`); production sets URLs.

    Production: `MOETUNE_DATABASE_URL=postgresql+psycopg://user@host/db`,
    `MOETUNE_BROKER_URL=redis://host:6379/0`, `MOETUNE_RESULT_BACKEND=redis://host:6379/1`.
    """

    model_config = SettingsConfigDict(env_prefix="MOETUNE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./.moetune/moetune.db"
    broker_url: str = "sqla+sqlite:///./.moetune/broker.db"
    result_backend: str = "db+sqlite:///./.moetune/results.db"
    storage_dir: Path = Path("./.moetune/storage")
    max_upload_bytes: int = Field(default=512 * MiB, gt=0)
    max_request_bytes: int = Field(default=1 * MiB, gt=0, description="JSON request bodies")
    base_models: list[str] = ["smollm2-135m-instruct"]
    training_queue: str = "training"
    training_task: str = "moetune.train"
    lease_seconds: int = Field(default=300, gt=0, description="a worker renews its lease well within this")
    max_attempts: int = Field(default=3, gt=0, description="a job whose lease expired this often fails")
    auto_migrate: bool = Field(default=True, description="run Alembic at start-up (embedded mode)")
    events_poll_seconds: float = Field(default=1.0, gt=0, description="SSE event streams poll this often")
    broker_timeout_seconds: float = Field(default=2.0, gt=0)
    heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        description="a training worker renews its lease (and reads cancel requests) this often",
    )
    reaper_seconds: float = Field(
        default=30.0, gt=0, description="the reaper requeues expired leases this often"
    )
    visibility_timeout_seconds: int = Field(
        default=12 * 3600,
        gt=0,
        description="Redis redelivers an unacknowledged task after this; the lease decides who runs it",
    )
    model_cache_dir: Path | None = Field(
        default=None, description="built-in base models (default ~/.cache/moetune)"
    )
    inference_url: str = Field(
        default="http://127.0.0.1:8001",
        description="the inference server (in production a load balancer in front of the GPU inference servers)",
    )
    inference_token: str | None = Field(
        default=None, description="shared secret the API sends to the inference servers"
    )
    inference_timeout_seconds: float = Field(default=600.0, gt=0)
    adapter_cache_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="adapter LRU budget per base model"
    )
    inference_max_batch_size: int = Field(default=16, gt=0)
