"""Sign-in pages: password, second factor, 2FA enrolment, password change, sign-out."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from yiwang.core.auth import login
from yiwang.core.errors import DomainError
from yiwang.web.context import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Ctx,
    LoginRequired,
    any_ctx,
    apply_cookies,
    check_csrf,
    ctx_scope,
    set_cookie,
)
from yiwang.web.problems import STAGE_PAGES
from yiwang.web.templating import render_page as _render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after sign-in."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _after_stage(ctx: Ctx, stage: str, next_url: str = "/") -> Response:
    response = RedirectResponse(STAGE_PAGES.get(stage, _safe_next(next_url)), status_code=303)
    return apply_cookies(ctx, response)


def _error_text(ctx: Ctx, error: DomainError | None) -> str:
    if error is None:
        return ""
    return ctx._(error.detail, **error.params)


async def stage_ctx(request: Request) -> AsyncIterator[Ctx]:
    """A session that is signed in with a password, at any stage."""
    async with ctx_scope(request) as ctx:
        if ctx.active is None:
            raise LoginRequired()
        yield ctx


@router.get("/login")
async def login_page(next: str = "/", ctx: Ctx = Depends(any_ctx, scope="function")) -> Response:
    if ctx.signed_in:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(ctx, "login.html", next=_safe_next(next))


@router.post("/login")
async def login_submit(
    username: str = Form("", max_length=128),
    password: str = Form("", max_length=256),
    next: str = Form("/", max_length=512),
    ctx: Ctx = Depends(any_ctx, scope="function"),
) -> Response:
    await check_csrf(ctx)
    outcome = await login.authenticate(
        ctx.session,
        ctx.settings,
        username.strip(),
        password,
        ip=ctx.ip,
        user_agent=ctx.request.headers.get("user-agent", ""),
    )
    if not outcome.ok:
        return _render(
            ctx,
            "login.html",
            status=401,
            next=_safe_next(next),
            username=username,
            error=_error_text(ctx, outcome.error),
        )
    response = _after_stage(ctx, outcome.stage, next)
    set_cookie(ctx.settings, response, SESSION_COOKIE, outcome.token)
    # A new CSRF seed with the new session: a token seen before sign-in is worthless after.
    import secrets

    set_cookie(ctx.settings, response, CSRF_COOKIE, secrets.token_urlsafe(24))
    return response


@router.get("/login/2fa")
async def second_factor_page(ctx: Ctx = Depends(stage_ctx, scope="function")) -> Response:
    assert ctx.active is not None
    if ctx.active.web.stage != login.STAGE_MFA:
        return _after_stage(ctx, ctx.active.web.stage)
    return _render(ctx, "login_2fa.html")


@router.post("/login/2fa")
async def second_factor_submit(
    code: str = Form("", max_length=16), ctx: Ctx = Depends(stage_ctx, scope="function")
) -> Response:
    assert ctx.active is not None
    outcome = await login.verify_second_factor(ctx.session, ctx.settings, ctx.active, code)
    if not outcome.ok:
        return _render(ctx, "login_2fa.html", status=401, error=_error_text(ctx, outcome.error))
    return _after_stage(ctx, outcome.stage)


def _qr_svg(uri: str) -> str:
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, xmldecl=False, svgns=True)
    return out.getvalue().decode("utf-8")


@router.get("/account/2fa")
async def enrol_page(ctx: Ctx = Depends(stage_ctx, scope="function")) -> Response:
    assert ctx.active is not None
    if ctx.active.web.stage not in (login.STAGE_ENROL, login.STAGE_FULL):
        return _after_stage(ctx, ctx.active.web.stage)
    enrolment = await login.pending_enrolment(ctx.settings, ctx.active.user)
    if enrolment is None:
        enrolment = await login.start_enrolment(ctx.session, ctx.settings, ctx.active)
    return _render(
        ctx,
        "enrol_2fa.html",
        secret=enrolment.secret,
        qr=_qr_svg(enrolment.uri),
        enrolled=bool(ctx.active.user.totp_secret),
    )


@router.post("/account/2fa")
async def enrol_submit(
    code: str = Form("", max_length=16),
    password: str = Form("", max_length=256),
    ctx: Ctx = Depends(stage_ctx, scope="function"),
) -> Response:
    assert ctx.active is not None
    if ctx.active.web.stage not in (login.STAGE_ENROL, login.STAGE_FULL):
        return _after_stage(ctx, ctx.active.web.stage)
    outcome = await login.confirm_enrolment(ctx.session, ctx.settings, ctx.active, code, password)
    if isinstance(outcome.error, login.AccountLocked):
        return _render(ctx, "error_page.html", status=403, message=_error_text(ctx, outcome.error))
    if not outcome.ok:
        enrolment = await login.pending_enrolment(ctx.settings, ctx.active.user)
        if enrolment is None:
            enrolment = await login.start_enrolment(ctx.session, ctx.settings, ctx.active)
        return _render(
            ctx,
            "enrol_2fa.html",
            status=400,
            secret=enrolment.secret,
            qr=_qr_svg(enrolment.uri),
            error=_error_text(ctx, outcome.error),
            enrolled=bool(ctx.active.user.totp_secret),
        )
    return _after_stage(ctx, outcome.stage)


@router.get("/account/password")
async def password_page(ctx: Ctx = Depends(stage_ctx, scope="function")) -> Response:
    assert ctx.active is not None
    if ctx.active.web.stage not in (login.STAGE_PASSWORD, login.STAGE_FULL):
        return _after_stage(ctx, ctx.active.web.stage)
    return _render(ctx, "password.html", forced=ctx.active.web.stage == login.STAGE_PASSWORD)


@router.post("/account/password")
async def password_submit(
    old_password: str = Form("", max_length=256),
    new_password: str = Form("", max_length=256),
    confirm_password: str = Form("", max_length=256),
    ctx: Ctx = Depends(stage_ctx, scope="function"),
) -> Response:
    assert ctx.active is not None
    if ctx.active.web.stage not in (login.STAGE_PASSWORD, login.STAGE_FULL):
        return _after_stage(ctx, ctx.active.web.stage)
    forced = ctx.active.web.stage == login.STAGE_PASSWORD
    if new_password != confirm_password:
        return _render(
            ctx,
            "password.html",
            status=400,
            forced=forced,
            field="confirm_password",
            error=ctx._("The two new passwords differ."),
        )
    try:
        async with ctx.session.begin_nested():
            error = await login.change_password(
                ctx.session, ctx.settings, ctx.active, old_password, new_password
            )
    except DomainError as exc:
        error = exc
    if error is not None:
        return _render(
            ctx,
            "password.html",
            status=400,
            forced=forced,
            field=error.field,
            error=_error_text(ctx, error),
        )
    return _render(ctx, "password.html", forced=False, done=True)


@router.post("/logout")
async def logout(ctx: Ctx = Depends(stage_ctx, scope="function")) -> Response:
    assert ctx.active is not None
    await login.logout(ctx.session, ctx.active)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
