"""The application factory: `uvicorn --factory api.main:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api.errors import install_error_handlers
from api.routes import api_router, health
from api.services.inference import InferenceClient
from api.services.queue import TrainingQueue
from api.services.storage import FileStorage
from api.settings import Settings
from api.telemetry import LatencyMiddleware, Telemetry
from db.migrate import upgrade_database
from db.session import make_engine, make_session_factory


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; with `auto_migrate`, start-up brings the database to the latest migration."""
    settings = settings or Settings()
    engine = make_engine(settings.database_url)
    queue = TrainingQueue.from_settings(settings)
    inference = InferenceClient(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await run_in_threadpool(upgrade_database, settings.database_url)
        yield
        await inference.close()
        queue.close()
        engine.dispose()

    app = FastAPI(
        title="moetune",
        summary="Fine-tuning of mixtures of LoRA experts, OpenAI-compatible",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.storage = FileStorage(settings.storage_dir)
    app.state.queue = queue
    app.state.inference = inference
    app.state.telemetry = Telemetry(app.state.session_factory, queue)

    install_error_handlers(app)
    app.add_middleware(LatencyMiddleware, telemetry=app.state.telemetry)
    app.include_router(health.router)
    app.include_router(api_router(settings))
    return app
