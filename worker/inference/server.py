"""The inference server: one `Engine` per base model, adapters loaded on first use.

    uvicorn worker.inference.server:create_inference_app --factory --port 8001

Requests for different adapters on the same base model are batched by the engine's scheduler
thread into one forward pass; the event loop only awaits the engine's async streams, so the
server stays responsive while it generates. A client that disconnects from a stream cancels
its generation (the consuming task is cancelled, and the engine drops the rows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse

from api.inference_protocol import ChoiceOut, DeltaLine, GenerateBody, GenerateResult, UsageOut
from api.settings import Settings
from core.inference import AdapterKey, Engine, GenerationRequest, GenerationResult, TokenDelta


class EnginePool:
    """Engines by base model, created on first use (loading a base model takes seconds)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, base_model: str) -> Engine:
        with self._lock:
            if base_model not in self._engines:
                from core.models import resolve_model

                loaded = resolve_model(base_model, cache_dir=self.settings.model_cache_dir)
                self._engines[base_model] = Engine(
                    loaded,
                    cache_budget_bytes=self.settings.adapter_cache_bytes,
                    max_batch_size=self.settings.inference_max_batch_size,
                )
            return self._engines[base_model]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            engines = dict(self._engines)
        return {name: dataclasses.asdict(engine.stats()) for name, engine in engines.items()}

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()


def _request(body: GenerateBody, engine: Engine) -> GenerationRequest:
    key = None
    if body.adapter is not None:
        key = AdapterKey(body.adapter.tenant, body.adapter.adapter_id)
        engine.register_adapter(key, body.adapter.path)  # idempotent; the API checked the tenant owns it
    try:
        return GenerationRequest(
            messages=body.messages, prompt=body.prompt, adapter_key=key, max_tokens=body.max_tokens,
            temperature=body.temperature, top_p=body.top_p, stop=tuple(body.stop), seed=body.seed, n=body.n,
            return_routing=body.return_routing,
        )  # fmt: skip
    except ValueError as err:
        field, _, message = str(err).partition(": ")
        raise HTTPException(400, {"param": field, "message": message or str(err)}) from None


def _routing(value: Any) -> Any:
    return None if value is None else {k: dataclasses.asdict(v) for k, v in value.items()}


def _result(result: GenerationResult) -> GenerateResult:
    usage = result.usage
    return GenerateResult(
        choices=[ChoiceOut(index=c.index, text=c.text, finish_reason=c.finish_reason,
                           routing=[_routing(r) for r in c.routing] if c.routing is not None else None)
                 for c in result.choices],
        usage=UsageOut(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                       total_tokens=usage.total_tokens),
    )  # fmt: skip


def create_inference_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    pool = EnginePool(settings)
    app = FastAPI(title="moetune inference server", docs_url=None, redoc_url=None)
    app.state.pool = pool

    def check(token: str | None) -> None:
        if settings.inference_token and token != settings.inference_token:
            raise HTTPException(401, {"param": None, "message": "bad internal token"})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/internal/stats")
    def stats(x_moetune_internal: str | None = Header(default=None)) -> dict[str, Any]:
        check(x_moetune_internal)
        return pool.stats()

    @app.post("/internal/generate", response_model=None)
    async def generate(
        body: GenerateBody, x_moetune_internal: str | None = Header(default=None)
    ) -> GenerateResult | StreamingResponse:
        check(x_moetune_internal)
        engine = await asyncio.to_thread(pool.get, body.base_model)
        request = _request(body, engine)
        if not body.stream:
            [result] = await engine.agenerate([request])
            return _result(result)
        stream = engine.astream(request)
        return StreamingResponse(_lines(stream), media_type="application/x-ndjson")

    @app.on_event("shutdown")
    def shutdown() -> None:
        pool.close()

    return app


async def _lines(stream: Any) -> AsyncIterator[bytes]:
    delta: TokenDelta
    try:
        async for delta in stream:
            line = DeltaLine(type="delta", index=delta.index, text=delta.text, finish_reason=delta.finish_reason,
                             routing=_routing(delta.routing))  # fmt: skip
            yield (line.model_dump_json(exclude_none=True) + "\n").encode()
        result: GenerationResult = await stream.result()
        usage = UsageOut(prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens,
                         total_tokens=result.usage.total_tokens)  # fmt: skip
        yield (DeltaLine(type="usage", usage=usage).model_dump_json(exclude_none=True) + "\n").encode()
    except Exception as err:  # reported in-band: the HTTP status is already sent
        yield (
            json.dumps({"type": "error", "error": {"message": str(err), "type": type(err).__name__}}) + "\n"
        ).encode()
