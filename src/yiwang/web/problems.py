"""Errors as RFC 9457 problem+json (for APIs) or an error page (for people), with a stable
``code``, a message in the user's language and the offending field or row."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from yiwang.core import i18n
from yiwang.core.db import DatabaseBusy
from yiwang.core.errors import DomainError, InvalidRows
from yiwang.web.context import LoginRequired, _language
from yiwang.web.templating import Templates

log = logging.getLogger("yiwang.web")

STAGE_PAGES = {"mfa": "/login/2fa", "enrol": "/account/2fa", "password": "/account/password"}
HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "not_authenticated",
    403: "permission_denied",
    413: "too_large",
    429: "rate_limited",
}


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith(("/api/", "/open311/", "/ogc/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def problem(
    request: Request, status: int, code: str, title: str, detail: str, **extra: Any
) -> Response:
    body = {
        "type": f"urn:yiwang:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    if _wants_html(request):
        templates: Templates = request.app.state.templates
        return templates.render(request, "error.html", {"problem": body}, status_code=status)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _lang(request: Request) -> str:
    ctx = getattr(request.state, "ctx", None)
    return ctx.lang if ctx is not None else _language(request, request.app.state.settings)[0]


#: Parameters that hold a vocabulary word (an org kind), translated before they are filled in.
_WORD_PARAMS = ("kind", "parent")


def _words(lang: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: i18n.gettext(lang, v) if k in _WORD_PARAMS and isinstance(v, str) else v
        for k, v in params.items()
    }


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, LoginRequired) and _wants_html(request):
        target = STAGE_PAGES.get(exc.stage or "", "/login")
        if target == "/login" and request.url.path != "/":
            from urllib.parse import quote

            target += "?next=" + quote(request.url.path)
        return RedirectResponse(target, status_code=303)
    lang = _lang(request)
    params = {k: v for k, v in exc.params.items()}
    extra: dict[str, Any] = {"field": exc.field, "row": exc.row, **exc.extra}
    if isinstance(exc, InvalidRows):
        extra["errors"] = [
            {**p.as_dict(), "message": i18n.gettext(lang, p.message, **_words(lang, p.params))}
            for p in exc.problems[: exc.MAX_LISTED]
        ]
    if params:
        extra["params"] = params
    response = problem(
        request,
        exc.status,
        exc.code,
        i18n.gettext(lang, exc.message),
        i18n.gettext(lang, exc.detail, **params),
        **extra,
    )
    if exc.status == 401 and not _wants_html(request):
        response.headers["www-authenticate"] = "Bearer"
    return response


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    lang = _lang(request)
    errors = [
        {
            "field": ".".join(
                str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")
            ),
            "location": (err.get("loc") or ("",))[0],
            "message": err.get("msg", ""),
        }
        for err in exc.errors()
    ]
    first = errors[0]["field"] if errors else None
    return problem(
        request,
        422,
        "validation_failed",
        i18n.gettext(lang, "The input is not valid."),
        "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        field=first,
        errors=errors,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else "error"
    response = problem(request, exc.status_code, code, detail, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def database_refused(request: Request, exc: Exception) -> Response:
    """The database refused a value the checks let through: a duplicate that raced past
    our own check (409), or a value it cannot store, such as a NUL character (422). Any
    other database error is ours (500)."""
    if not isinstance(exc, (IntegrityError, DataError)) and "0x00" not in str(exc):
        return await unexpected_error(request, exc)
    lang = _lang(request)
    log.warning(
        "database refused %s %s: %s",
        request.method,
        request.url.path,
        str(exc).splitlines()[0][:300],
    )
    if isinstance(exc, IntegrityError):
        text = i18n.gettext(lang, "The object already exists or was changed by someone else.")
        return problem(request, 409, "conflict", text, text)
    return problem(
        request,
        422,
        "invalid_value",
        i18n.gettext(lang, "The input is not valid."),
        i18n.gettext(lang, "A value cannot be stored (for example, it holds a NUL character)."),
    )


async def database_busy(request: Request, exc: Exception) -> Response:
    lang = _lang(request)
    response = problem(
        request,
        503,
        "busy",
        i18n.gettext(lang, "The system is busy."),
        i18n.gettext(lang, "Too many requests; try again later."),
    )
    response.headers["retry-after"] = "2"
    return response


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up while sending: nobody is left to answer."""
    return Response(status_code=499)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    lang = _lang(request)
    return problem(
        request,
        500,
        "internal_error",
        i18n.gettext(lang, "Something went wrong on our side."),
        i18n.gettext(lang, "The error was logged; quote the request id to support."),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, database_refused)
    app.add_exception_handler(DataError, database_refused)
    app.add_exception_handler(DBAPIError, database_refused)
    app.add_exception_handler(DatabaseBusy, database_busy)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected_error)
