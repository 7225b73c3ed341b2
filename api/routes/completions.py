from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import CurrentTenant, InferenceDep, SessionDep, SettingsDep
from api.errors import APIError
from api.inference_protocol import AdapterRef, DeltaLine, GenerateBody
from api.schemas.completions import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionCreate,
    Completion,
    CompletionChoice,
    CompletionCreate,
    SamplingFields,
    Usage,
)
from db.models_registry import resolve_served_model

router = APIRouter(tags=["inference"])

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "With stream=true: server-sent events"}
}


def _body(request: SamplingFields, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep,
          **prompt: Any) -> GenerateBody:  # fmt: skip
    served = resolve_served_model(session, tenant.id, request.model, settings.base_models)
    if served is None:
        raise APIError(404, "model_not_found", f"The model '{request.model}' does not exist", "model")
    adapter = None
    if served.adapter_id is not None and served.adapter_path is not None:
        adapter = AdapterRef(tenant=tenant.id, adapter_id=served.adapter_id, path=served.adapter_path)
    return GenerateBody(
        base_model=served.base_model, adapter=adapter, max_tokens=request.token_limit(),
        temperature=request.temperature, top_p=request.top_p, stop=request.stops(), seed=request.seed, n=request.n,
        return_routing=request.return_routing, stream=request.stream, **prompt,
    )  # fmt: skip


@router.post("/chat/completions", responses=STREAM_RESPONSES)
async def create_chat_completion(
    body: ChatCompletionCreate, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep,
    inference: InferenceDep,
) -> ChatCompletion:  # fmt: skip
    """Chat with a base model, a fine-tuned model or a checkpoint (OpenAI's shape; `stream=true` for SSE)."""
    upstream = _body(body, session, tenant, settings, messages=[m.model_dump() for m in body.messages])
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        chunks = _chat_chunks(await _primed(inference.stream(upstream)), completion_id, created, body)
        return StreamingResponse(chunks, media_type="text/event-stream")  # type: ignore[return-value]  # SSE
    result = await inference.generate(upstream)
    choices = [ChatChoice(index=c.index, message=AssistantMessage(content=c.text), finish_reason=c.finish_reason,
                          routing=c.routing) for c in result.choices]  # fmt: skip
    return ChatCompletion(id=completion_id, created=created, model=body.model, choices=choices,
                          usage=Usage(**result.usage.model_dump()))  # fmt: skip


@router.post("/completions", responses=STREAM_RESPONSES)
async def create_completion(
    body: CompletionCreate,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    inference: InferenceDep,
) -> Completion:
    """Complete a raw prompt (no chat template)."""
    upstream = _body(body, session, tenant, settings, prompt=body.prompt)
    completion_id, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        chunks = _completion_chunks(await _primed(inference.stream(upstream)), completion_id, created, body)
        return StreamingResponse(chunks, media_type="text/event-stream")  # type: ignore[return-value]  # SSE
    result = await inference.generate(upstream)
    choices = [CompletionChoice(index=c.index, text=c.text, finish_reason=c.finish_reason, routing=c.routing)
               for c in result.choices]  # fmt: skip
    return Completion(id=completion_id, created=created, model=body.model, choices=choices,
                      usage=Usage(**result.usage.model_dump()))  # fmt: skip


async def _chat_chunks(
    lines: AsyncIterator[DeltaLine], cid: str, created: int, body: SamplingFields
) -> AsyncIterator[bytes]:
    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                                "choices": choices}  # fmt: skip
        if usage is not None:
            data["usage"] = usage
        return _event(data)

    for index in range(body.n):
        yield chunk([{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    async for line in lines:
        if line.type == "error":
            yield _error_event(line)
            return
        if line.type == "usage" and line.usage is not None:
            if body.stream_options and body.stream_options.include_usage:
                yield chunk([], line.usage.model_dump())
            continue
        delta: dict[str, Any] = {"content": line.text} if line.text else {}
        choice: dict[str, Any] = {"index": line.index, "delta": delta, "finish_reason": line.finish_reason}
        if line.routing is not None:
            choice["routing"] = line.routing
        if delta or line.finish_reason or line.routing is not None:
            yield chunk([choice])
    yield b"data: [DONE]\n\n"


async def _completion_chunks(
    lines: AsyncIterator[DeltaLine], cid: str, created: int, body: SamplingFields
) -> AsyncIterator[bytes]:
    async for line in lines:
        if line.type == "error":
            yield _error_event(line)
            return
        if line.type == "usage":
            if body.stream_options and body.stream_options.include_usage and line.usage is not None:
                data = {"id": cid, "object": "text_completion", "created": created, "model": body.model,
                        "choices": [], "usage": line.usage.model_dump()}  # fmt: skip
                yield _event(data)
            continue
        choice = {
            "index": line.index,
            "text": line.text,
            "finish_reason": line.finish_reason,
            "logprobs": None,
        }
        data = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": [choice],
        }
        yield _event(data)
    yield b"data: [DONE]\n\n"


async def _primed(lines: AsyncIterator[DeltaLine]) -> AsyncIterator[DeltaLine]:
    """Wait for the first line before the response starts, so that an unknown adapter, bad
    parameters or an unreachable inference server still get a proper HTTP error."""
    first = await anext(lines)

    async def chained() -> AsyncIterator[DeltaLine]:
        yield first
        async for line in lines:
            yield line

    return chained()


def _error_event(line: DeltaLine) -> bytes:
    """An in-band error (the status line is already sent), as OpenAI streams them."""
    error = {
        "message": str((line.error or {}).get("message")),
        "type": "inference_error",
        "code": "inference_error",
    }
    return _event({"error": error})


def _event(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying a JSON object."""
    return f"data: {json.dumps(data)}\n\n".encode()
