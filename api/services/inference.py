"""The API's client of the inference servers (internal HTTP, `api.inference_protocol`).

Non-blocking: httpx's async client, so the event loop keeps serving job polling while a
generation runs elsewhere. When the API's client goes away mid-stream, Starlette cancels the
response generator, which closes the upstream stream, and the inference server cancels the
generation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from api.errors import APIError
from api.inference_protocol import DeltaLine, GenerateBody, GenerateResult
from api.settings import Settings


class InferenceClient:
    def __init__(self, settings: Settings) -> None:
        headers = {"X-Moetune-Internal": settings.inference_token} if settings.inference_token else {}
        self.http = httpx.AsyncClient(
            base_url=settings.inference_url, headers=headers, timeout=httpx.Timeout(settings.inference_timeout_seconds, connect=5.0)
        )  # fmt: skip

    async def generate(self, body: GenerateBody) -> GenerateResult:
        try:
            response = await self.http.post("/internal/generate", json=body.model_dump())
        except httpx.TransportError as err:
            raise _unavailable(err) from None
        _raise_for(response.status_code, response.json() if response.status_code != 200 else None)
        return GenerateResult.model_validate(response.json())

    async def stream(self, body: GenerateBody) -> AsyncIterator[DeltaLine]:
        try:
            async with self.http.stream("POST", "/internal/generate", json=body.model_dump()) as response:
                if response.status_code != 200:
                    _raise_for(response.status_code, _json(await response.aread()))
                async for line in response.aiter_lines():
                    if line.strip():
                        yield DeltaLine.model_validate_json(line)
        except httpx.TransportError as err:
            raise _unavailable(err) from None

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/internal/stats", timeout=2.0)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    async def close(self) -> None:
        await self.http.aclose()


def _json(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return {"detail": raw.decode(errors="replace")}


def _raise_for(status: int, body: Any) -> None:
    if status == 200:
        return
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 400 and isinstance(detail, dict):
        raise APIError(400, "invalid_value", str(detail.get("message")), detail.get("param"))
    raise APIError(502, "inference_error", f"the inference server answered {status}: {str(detail)[:300]}")


def _unavailable(err: Exception) -> APIError:
    return APIError(503, "inference_unavailable", f"no inference server reachable: {type(err).__name__}")
