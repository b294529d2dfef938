"""Errors as the SDK decodes them: every error body is ``{"error": message}``.

The SDK maps 401, 403, 404 and 409 to its exception types and reads the
message from ``error``. Bad input is a 4xx whose message names the field;
a database that cannot answer a read is a 503; nothing the caller sends can
cause a 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agenttier_router.controlplane import (
    ControlPlaneError,
    ControlPlaneUnavailable,
    InvalidRequest,
    SandboxConflict,
    SandboxNotFound,
)
from agenttier_router.controlplane.localfiles import FileNotFound, FileTooLarge
from agenttier_router.storage import BackendUnavailable, InvalidQuery, StorageError

__all__ = ["ApiError", "install_error_handlers"]

log = logging.getLogger("agenttier_router.api")


class ApiError(Exception):
    """An error the API answers with ``status`` and ``{"error": message}`` (and ``headers``)."""

    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def _body(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _field(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def _document_bad_requests(app: FastAPI) -> None:
    """Make the served OpenAPI spec say what the API answers: 400 with ``ErrorOut``, never 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {"description": "Bad Request", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the API raises answer in the SDK's shape (and the spec say so)."""
    _document_bad_requests(app)

    @app.exception_handler(ApiError)
    async def _api(request: Request, error: ApiError) -> JSONResponse:
        response = _body(error.status, error.message)
        response.headers.update(error.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in error.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _body(400, f"invalid request: {summary}", fields=fields)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        return _body(error.status_code, str(error.detail))

    @app.exception_handler(ControlPlaneError)
    async def _control_plane(request: Request, error: ControlPlaneError) -> JSONResponse:
        if isinstance(error, SandboxNotFound | FileNotFound):
            return _body(404, str(error))
        if isinstance(error, FileTooLarge):
            return _body(413, str(error))
        if isinstance(error, SandboxConflict):
            return _body(409, str(error))
        if isinstance(error, InvalidRequest):
            return _body(400, str(error))
        if isinstance(error, ControlPlaneUnavailable):
            response = _body(503, f"control plane unavailable: {error}")
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
            return response
        log.error("control plane error on %s %s: %s", request.method, request.url.path, error)
        return _body(502, f"control plane error: {error}")

    @app.exception_handler(StorageError)
    async def _storage(request: Request, error: StorageError) -> JSONResponse:
        if isinstance(error, InvalidQuery):
            return _body(400, str(error))
        if not isinstance(error, BackendUnavailable):
            log.error("storage error on %s %s: %s", request.method, request.url.path, error)
        return _body(503, f"storage is unavailable: {error}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _body(500, "internal error")
