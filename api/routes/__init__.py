"""The `/v1` routers, assembled once per app (the upload route's body limit comes from the settings)."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import completions, files, jobs, models
from api.settings import Settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around the file's bytes


def api_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1", max_body_size=settings.max_request_bytes)
    router.include_router(files.router, max_body_size=settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES)
    router.include_router(jobs.router)
    router.include_router(models.router)
    router.include_router(completions.router)
    return router
