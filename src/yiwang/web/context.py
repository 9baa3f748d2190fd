"""Per-request context: the database session (one transaction per request), the language,
and who is asking (a browser session or an API token), with CSRF checks for cookie-borne
requests that change state."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import DetachedInstanceError

from yiwang.core import i18n
from yiwang.core.auth import login, tokens
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.errors import DomainError, NotAuthenticated, PermissionDenied
from yiwang.core.plugins import Registry
from yiwang.core.settings import Settings

SESSION_COOKIE = "yw_session"
CSRF_COOKIE = "yw_csrf"
LANG_COOKIE = "yw_lang"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfFailed(DomainError):
    code = "csrf_failed"
    status = 403
    message = "The form has expired or did not come from this site. Reload the page and try again."


class LoginRequired(NotAuthenticated):
    """For pages: the handler turns it into a redirect to the step the session is at."""

    def __init__(self, stage: str | None = None) -> None:
        super().__init__()
        self.stage = stage


class StageRequired(NotAuthenticated):
    code = "sign_in_incomplete"
    message = "Finish signing in first (second factor, enrolment or new password)."


@dataclass
class Ctx:
    request: Request
    session: AsyncSession
    settings: Settings
    db: Database
    registry: Registry
    lang: str
    active: login.ActiveSession | None = None
    token_principal: Principal | None = None
    cookies_to_set: dict[str, str] = field(default_factory=dict)
    stage_at_start: str | None = None

    @property
    def principal(self) -> Principal:
        if self.token_principal is not None:
            return self.token_principal
        if self.active is not None and self.stage == login.STAGE_FULL:
            return self.active.principal
        raise NotAuthenticated()

    @property
    def stage(self) -> str | None:
        """The session's sign-in stage; after a failed request's rollback (an error page is
        being drawn) the stage as it was when the request came in."""
        if self.active is None:
            return None
        try:
            return self.active.web.stage
        except DetachedInstanceError:
            return self.stage_at_start

    @property
    def signed_in(self) -> bool:
        return self.token_principal is not None or (self.stage == login.STAGE_FULL)

    @property
    def ip(self) -> str:
        return client_ip(self.request)

    def _(self, message: str, **params: Any) -> str:
        return i18n.gettext(self.lang, message, **params)

    def csrf_token(self) -> str:
        seed = self.request.cookies.get(CSRF_COOKIE) or self.cookies_to_set.get(CSRF_COOKIE)
        if not seed:
            seed = secrets.token_urlsafe(24)
            self.cookies_to_set[CSRF_COOKIE] = seed
        return csrf_for(self.settings, seed, self._session_binding())

    def _session_binding(self) -> str:
        if self.active is None:
            return ""
        return self.active.principal.session_id or ""


def csrf_for(settings: Settings, seed: str, session_id: str = "") -> str:
    """Signed double-submit: the token is a MAC, bound to the session, of an HttpOnly cookie;
    only we can compute it, and a planted cookie alone does not make a valid token."""
    key = settings.secret_key_value().encode()
    message = f"csrf:{seed}:{session_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def check_csrf(ctx: Ctx) -> None:
    request = ctx.request
    seed = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token", "")
        sent = value if isinstance(value, str) else ""
    expected = csrf_for(ctx.settings, seed, ctx._session_binding())
    if not seed or not sent or not hmac.compare_digest(sent, expected):
        raise CsrfFailed()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _language(request: Request, settings: Settings) -> tuple[str, str | None]:
    """(language, cookie value to set): ?lang= wins and is remembered in a cookie."""
    asked = i18n.normalise(request.query_params.get("lang"))
    if asked:
        return asked, asked
    remembered = i18n.normalise(request.cookies.get(LANG_COOKIE))
    return remembered or settings.default_language, None


@asynccontextmanager
async def ctx_scope(request: Request, *, readonly: bool = False) -> AsyncIterator[Ctx]:
    """The request's context and transaction; every dependency below enters it with
    ``async with`` so that an error in the route rolls back at once. ``readonly``: a
    read-only session (on SQLite it never waits for writers) for API routes that write
    elsewhere (group-committed intake); an API token's last use is then written after it."""
    state = request.app.state
    db: Database = state.db
    lang, lang_cookie = _language(request, state.settings)
    if request.method in UNSAFE and request.headers.get("content-type", "").startswith(FORMS):
        # Read the body before the transaction begins: a slow client must not hold the
        # database while it sends (Starlette keeps the parsed form for the route).
        await request.form()
    claimed = None  # the token whose last use this request writes
    try:
        async with db.session(readonly=readonly) as session:
            ctx = Ctx(request, session, state.settings, db, state.registry, lang)
            if lang_cookie:
                ctx.cookies_to_set[LANG_COOKIE] = lang_cookie
            await _authenticate(ctx, touch=not readonly)
            if ctx.token_principal is not None and ctx.token_principal.token_use_claimed:
                claimed = ctx.token_principal.token_id
            request.state.ctx = ctx
            yield ctx
        if readonly and claimed is not None:
            async with db.session() as session:
                await tokens.touch(session, claimed)
    except BaseException:
        if claimed is not None:  # rolled back, or never written: another request will
            tokens.unclaim(session, claimed)
        raise


async def _authenticate(ctx: Ctx, *, touch: bool = True) -> None:
    request = ctx.request
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise NotAuthenticated("Use 'Authorization: Bearer <token>'.")
        ctx.token_principal = await tokens.resolve(
            ctx.session, secret.strip(), ip=ctx.ip, touch=touch
        )
        if ctx.token_principal is None:
            raise NotAuthenticated("The token is unknown, revoked or expired.")
        return
    if not touch:  # read-only: a browser session's sliding expiry would be a write
        raise NotAuthenticated("Use 'Authorization: Bearer <token>'.")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx.active = await login.resolve_session(ctx.session, ctx.settings, cookie, ip=ctx.ip)
        ctx.stage_at_start = ctx.active.web.stage if ctx.active is not None else None
        if ctx.active is not None and not request.cookies.get(LANG_COOKIE):
            preferred = i18n.normalise(ctx.active.user.language)
            if preferred and "lang" not in request.query_params:
                ctx.lang = preferred
    if ctx.active is not None and request.method in UNSAFE:
        await check_csrf(ctx)


async def any_ctx(request: Request) -> AsyncIterator[Ctx]:
    """Anyone, signed in or not."""
    async with ctx_scope(request) as ctx:
        yield ctx


async def api_ctx(request: Request) -> AsyncIterator[Ctx]:
    """An API caller that finished signing in (token or full session)."""
    async with ctx_scope(request) as ctx:
        if not ctx.signed_in:
            if ctx.active is not None:
                raise StageRequired()
            raise NotAuthenticated()
        yield ctx


async def page_ctx(request: Request) -> AsyncIterator[Ctx]:
    """A page for signed-in users: anyone else is sent to the sign-in step they are at."""
    async with ctx_scope(request) as ctx:
        if ctx.active is None or ctx.active.web.stage != login.STAGE_FULL:
            raise LoginRequired(ctx.active.web.stage if ctx.active else None)
        yield ctx


def requires(permission: str, *, page: bool = False) -> Callable[..., Any]:
    """A dependency: the context, after checking that the principal holds ``permission``."""
    base = page_ctx if page else api_ctx

    async def dependency(ctx: Ctx = Depends(base, scope="function")) -> Ctx:
        if not ctx.principal.has(permission):
            raise PermissionDenied(params={"permission": permission})
        return ctx

    return dependency


def apply_cookies(ctx: Ctx, response: Response) -> Response:
    for name, value in ctx.cookies_to_set.items():
        set_cookie(ctx.settings, response, name, value)
    return response


def set_cookie(
    settings: Settings, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
