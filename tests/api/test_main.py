from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import inspect

from api.main import create_app
from db.session import make_engine
from tests.api.conftest import REDIS_URL, make_settings

ALL_TABLES = {
    "tenants",
    "api_keys",
    "files",
    "jobs",
    "job_events",
    "job_metrics",
    "checkpoints",
    "models",
    "idempotency_keys",
    "alembic_version",
}


def test_creating_the_app_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from api.main import create_app\n"
        "from api.settings import Settings\n"
        f"create_app(Settings(database_url='sqlite://', broker_url={REDIS_URL!r}))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'transformers' not in sys.modules, 'transformers was imported'\n"
    )
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)

    assert result.returncode == 0, result.stderr


def test_embedded_start_up_migrates_a_new_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'moetune.db'}"
    settings = make_settings(url, tmp_path / "storage", auto_migrate=True)

    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200

    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == ALL_TABLES
    finally:
        engine.dispose()


def test_openapi_schema_types_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    routes = {(method, path) for path, method, _ in operations}
    assert {("post", "/v1/files"), ("post", "/v1/fine_tuning/jobs"), ("get", "/v1/fine_tuning/jobs/{job_id}/metrics"),
            ("get", "/v1/models"), ("get", "/v1/models/{model_id}")} <= routes, routes  # fmt: skip
    for path, method, op in operations:
        ok = op["responses"]["200"]["content"]
        assert ok, f"{method} {path} has no typed 200 response"
        if "application/json" in ok:
            assert ok["application/json"]["schema"], f"{method} {path}"
    job = schema["components"]["schemas"]["JobPublic"]["properties"]
    assert {"adapter", "optimizer", "progress", "hyperparameters", "status"} <= set(job)
    create = schema["components"]["schemas"]["JobCreate"]["properties"]
    assert "batch_size" in str(create["hyperparameters"]) and "num_experts" in str(create["adapter"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
