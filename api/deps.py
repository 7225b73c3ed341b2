"""HTTP dependencies as `Annotated` aliases, so handlers read as plain typed signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import APIError
from api.services.inference import InferenceClient
from api.services.queue import TrainingQueue
from api.services.storage import FileStorage
from api.settings import Settings
from db.models import Tenant
from db.tenants import authenticate


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def get_storage(request: Request) -> FileStorage:
    storage: FileStorage = request.app.state.storage
    return storage


def get_queue(request: Request) -> TrainingQueue:
    queue: TrainingQueue = request.app.state.queue
    return queue


def get_inference(request: Request) -> InferenceClient:
    inference: InferenceClient = request.app.state.inference
    return inference


SettingsDep = Annotated[Settings, Depends(get_settings)]
InferenceDep = Annotated[InferenceClient, Depends(get_inference)]
SessionDep = Annotated[Session, Depends(get_session)]
StorageDep = Annotated[FileStorage, Depends(get_storage)]
QueueDep = Annotated[TrainingQueue, Depends(get_queue)]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
bearer = HTTPBearer(auto_error=False, description="An API key from `moetune keys create`")


def get_current_tenant(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Tenant:
    if credentials is None:
        raise APIError(
            401, "missing_api_key", "Missing API key: send 'Authorization: Bearer <key>'", headers=_CHALLENGE
        )
    tenant = authenticate(session, credentials.credentials)
    if tenant is None:
        raise APIError(401, "invalid_api_key", "Incorrect or revoked API key", headers=_CHALLENGE)
    return tenant


CurrentTenant = Annotated[Tenant, Depends(get_current_tenant)]

PageLimit = Annotated[int, Query(ge=1, le=100, description="Items per page")]
PageAfter = Annotated[str | None, Query(description="The last id of the previous page")]
