from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from api.deps import CurrentTenant, SessionDep, SettingsDep
from api.errors import not_found
from api.schemas.common import unix
from api.schemas.models import ModelList, ModelPublic
from db.models import Job, Model
from db.models_registry import get_model, list_models

router = APIRouter(prefix="/models", tags=["models"])

# Base models exist before any tenant; a fixed creation time keeps their objects stable.
BASE_CREATED = int(datetime(2025, 2, 1, tzinfo=UTC).timestamp())


def _fine_tuned(model: Model, job: Job) -> ModelPublic:
    adapter_type = (job.spec or {}).get("adapter", {}).get("type")
    return ModelPublic(id=model.id, created=unix(model.created_at), owned_by=model.tenant_id, parent=model.parent,
                       adapter_type=adapter_type, job_id=job.id)  # fmt: skip


@router.get("")
def list_all_models(session: SessionDep, tenant: CurrentTenant, settings: SettingsDep) -> ModelList:
    """The base models, then the tenant's fine-tuned adapters (newest first)."""
    data = [ModelPublic(id=name, created=BASE_CREATED, owned_by="moetune") for name in settings.base_models]
    data += [_fine_tuned(model, job) for model, job in list_models(session, tenant.id)]
    return ModelList.page(data, has_more=False)


@router.get("/{model_id:path}")
def read_model(
    model_id: str, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep
) -> ModelPublic:
    if model_id in settings.base_models:
        return ModelPublic(id=model_id, created=BASE_CREATED, owned_by="moetune")
    found = get_model(session, tenant.id, model_id)
    if found is None:
        raise not_found("model", model_id)
    return _fine_tuned(*found)
