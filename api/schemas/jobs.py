"""Fine-tuning job schemas. The nested adapter/optimizer/hyperparameter blocks are `core.jobs`'s own
dataclasses, so the OpenAPI schema and the trainer cannot disagree on a field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema, field_validator

from api.schemas.common import Identified, ListEnvelope, unix, unix_or_none
from core.jobs import AdapterSpec, Hyperparameters, OptimizerSpec
from db.models import Job

PublicJobStatus = Literal[
    "validating_files", "queued", "running", "cancel_requested", "succeeded", "failed", "cancelled"
]
DEFAULT_LEARNING_RATE = Hyperparameters().learning_rate


@dataclass
class HyperparametersPublic(Hyperparameters):
    """Our resolved hyperparameters plus OpenAI's `learning_rate_multiplier` (of the default rate)."""

    learning_rate_multiplier: float = 1.0


def _documented_as(cls: type) -> WithJsonSchema:
    """Document a free-form block with the dataclass's schema; `JobSpec.from_dict` validates it."""
    return WithJsonSchema(TypeAdapter(cls).json_schema(mode="validation"))


class SupervisedMethod(BaseModel):
    hyperparameters: dict[str, Any] | None = None


class JobMethod(BaseModel):
    """OpenAI's `method` block; only supervised fine-tuning is offered."""

    type: Literal["supervised"]
    supervised: SupervisedMethod | None = None


class JobCreate(BaseModel):
    """The create body. `adapter` and `optimizer` are ours (the openai client sends them via `extra_body`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    training_file: str = Field(min_length=1, max_length=40)
    validation_file: str | None = Field(default=None, min_length=1, max_length=40)
    hyperparameters: Annotated[dict[str, Any], _documented_as(HyperparametersPublic)] | None = None
    adapter: Annotated[dict[str, Any], _documented_as(AdapterSpec)] | None = None
    optimizer: Annotated[dict[str, Any], _documented_as(OptimizerSpec)] | None = None
    method: JobMethod | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    suffix: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    metadata: dict[str, str] | None = None

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > 16:
            raise ValueError("at most 16 keys")
        for key, item in value.items():
            if len(key) > 64 or len(item) > 512:
                raise ValueError(f"key {key!r}: keys are at most 64 characters, values at most 512")
        return value


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobProgress(BaseModel):
    step: int
    total_steps: int | None
    epoch: float | None
    eta_seconds: float | None


class JobPublic(Identified):
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    model: str
    status: PublicJobStatus
    created_at: int
    started_at: int | None
    finished_at: int | None
    fine_tuned_model: str | None
    organization_id: str
    training_file: str
    validation_file: str | None
    hyperparameters: HyperparametersPublic
    adapter: AdapterSpec
    optimizer: OptimizerSpec
    trained_tokens: int | None
    error: JobError | None
    seed: int
    suffix: str | None
    metadata: dict[str, str] | None
    result_files: list[str] = Field(default_factory=list)
    progress: JobProgress

    @classmethod
    def from_row(cls, job: Job) -> Self:
        hyperparameters = dict(job.spec["hyperparameters"])
        hyperparameters["learning_rate_multiplier"] = hyperparameters["learning_rate"] / DEFAULT_LEARNING_RATE
        return cls.model_validate(
            {
                "id": job.id,
                "model": job.model,
                "status": job.public_status,
                "created_at": unix(job.created_at),
                "started_at": unix_or_none(job.started_at),
                "finished_at": unix_or_none(job.finished_at),
                "fine_tuned_model": job.fine_tuned_model,
                "organization_id": job.tenant_id,
                "training_file": job.training_file_id,
                "validation_file": job.validation_file_id,
                "hyperparameters": hyperparameters,
                "adapter": job.spec["adapter"],
                "optimizer": job.spec["optimizer"],
                "trained_tokens": job.trained_tokens,
                "error": job.error,
                "seed": job.seed,
                "suffix": job.suffix,
                "metadata": job.metadata_,
                "progress": {
                    "step": job.step,
                    "total_steps": job.total_steps,
                    "epoch": job.epoch,
                    "eta_seconds": job.eta_seconds,
                },
            }
        )


class JobList(ListEnvelope[JobPublic]):
    pass
