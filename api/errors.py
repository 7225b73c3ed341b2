"""Every error leaves as `{"error": {"code", "message", "param", "type"}}` (OpenAI's shape)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas.errors import ErrorBody, ErrorResponse

logger = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
}
_HTTP_CODES = {
    401: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
}


class APIError(Exception):
    """An error answered with `status_code` and the error shape."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers


def not_found(kind: str, object_id: str, param: str | None = None) -> APIError:
    """404 for unknown ids and for other tenants' objects alike (existence is never leaked)."""
    return APIError(404, "not_found", f"No {kind} with id '{object_id}'", param)


def error_response(
    status_code: int, code: str, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    error_type = _TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")
    body = ErrorResponse(error=ErrorBody(code=code, message=message, param=param, type=error_type))
    headers = dict(headers or {})
    if 400 <= status_code < 500:
        headers.setdefault("x-should-retry", "false")  # OpenAI clients would otherwise retry a 409
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def param_from_loc(loc: Sequence[int | str]) -> str | None:
    """("body", "hyperparameters", "batch_size") -> "hyperparameters.batch_size"; list indices as [i]."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc.status_code, exc.code, exc.message, exc.param, exc.headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error" if exc.status_code < 500 else "server_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 413:
        code, message = "request_too_large", "Request body larger than this endpoint accepts"
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: Sequence[dict[str, Any]] = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    param = param_from_loc(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        param = None
    message = str(first.get("msg", "invalid request"))
    if param:
        message = f"{param}: {message}"
    return error_response(400, "invalid_request_error", message, param)


async def _unhandled(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


class BodyTooLargeMiddleware:
    """Give the framework's own 413 (a body over `max_body_size`, answered in plain text) the error shape.

    Starlette's body limiter replaces any response to a request whose declared Content-Length is
    over the limit, before a handler can shape it; this rewrites that response on the way out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rewriting = False

        async def send_shaped(message: Message) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = MutableHeaders(raw=message["headers"])
                rewriting = headers.get("content-type", "").startswith("text/plain")
            if not rewriting:
                await send(message)
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response = error_response(
                    413, "request_too_large", "Request body larger than this endpoint accepts"
                )
                await response(scope, receive, send)

        await self.app(scope, receive, send_shaped)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
    app.add_middleware(BodyTooLargeMiddleware)
