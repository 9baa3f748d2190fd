"""Signing in: passwords, lockout, second factor (TOTP), browser sessions, idle timeout."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.audit import service as audit
from yiwang.core.auth import passwords
from yiwang.core.auth.models import LoginFailure, User, WebSession
from yiwang.core.auth.principal import Principal
from yiwang.core.auth.service import make_principal, roles_of, set_password
from yiwang.core.db import keep
from yiwang.core.errors import DomainError, ValidationFailed
from yiwang.core.orgs.models import OrgNode
from yiwang.core.security.crypto import SM4Cipher
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow

STAGE_MFA, STAGE_ENROL, STAGE_PASSWORD, STAGE_FULL = "mfa", "enrol", "password", "full"
#: Don't write ``last_seen_at`` on every request: once a minute is precise enough.
TOUCH_EVERY = timedelta(seconds=60)


class LoginFailed(DomainError):
    code = "login_failed"
    status = 401
    message = "The username or password is wrong."


class AccountLocked(DomainError):
    code = "account_locked"
    status = 403
    message = "Too many failed sign-ins: the account is locked for {minutes} minutes."


class BadCode(DomainError):
    code = "bad_totp_code"
    status = 401
    message = "The verification code is wrong or expired."


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def _cipher(settings: Settings) -> SM4Cipher:
    return SM4Cipher(settings.data_key_bytes())


@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    token: str = ""
    stage: str = ""
    error: DomainError | None = None
    user_id: int | None = None


async def _stage_after_password(session: AsyncSession, settings: Settings, user: User) -> str:
    roles = await roles_of(session, user.id)
    if user.totp_secret:
        return STAGE_MFA
    if roles.requires_2fa:
        return STAGE_ENROL
    return _stage_after_mfa(settings, user)


def _stage_after_mfa(settings: Settings, user: User) -> str:
    expired = utcnow() - user.password_changed_at > timedelta(days=settings.password_max_age_days)
    return STAGE_PASSWORD if (user.must_change_password or expired) else STAGE_FULL


async def _record_failure(
    session: AsyncSession, settings: Settings, user: User, ip: str, reason: str
) -> DomainError:
    now = utcnow()
    session.add(LoginFailure(user_id=user.id, at=now, ip=ip))
    await session.flush()
    since = now - timedelta(minutes=settings.lockout_window_minutes)
    if user.last_login_at and user.last_login_at > since:
        since = user.last_login_at
    failures = (
        await session.execute(
            select(func.count(LoginFailure.id)).where(
                LoginFailure.user_id == user.id, LoginFailure.at > since
            )
        )
    ).scalar_one()
    await audit.record(
        session,
        None,
        "auth.login",
        "user",
        user.id,
        result=audit.FAILURE,
        actor_name=user.username,
        ip=ip,
        details={"reason": reason, "failures": failures},
    )
    if failures >= settings.lockout_threshold:
        user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
        await audit.record(
            session,
            None,
            "auth.lockout",
            "user",
            user.id,
            actor_name=user.username,
            ip=ip,
            details={"until": user.locked_until.isoformat()},
        )
        # Sessions waiting for a second factor end too: no more code guesses through them.
        await session.execute(
            update(WebSession)
            .where(WebSession.user_id == user.id, WebSession.stage != STAGE_FULL)
            .values(revoked=True)
        )
        return AccountLocked(params={"minutes": settings.lockout_minutes})
    return LoginFailed()


async def authenticate(
    session: AsyncSession,
    settings: Settings,
    username: str,
    password: str,
    *,
    ip: str = "",
    user_agent: str = "",
) -> LoginOutcome:
    """Check a password. Failures are counted, audited and committed (never raised), so
    that the caller's transaction keeps them."""
    # The row lock makes concurrent guesses for one account queue up behind each other, so
    # each sees the failures counted before it and the lockout holds under parallel attempts.
    user = (
        await session.execute(select(User).where(User.username == username).with_for_update())
    ).scalar_one_or_none()
    now = utcnow()
    if user is None or not user.active:
        passwords.dummy_verify(settings)
        await audit.record(
            session,
            None,
            "auth.login",
            "user",
            user.id if user else "",
            result=audit.FAILURE,
            actor_name=username[:128],
            ip=ip,
            details={"reason": "unknown_user" if user is None else "disabled"},
        )
        return LoginOutcome(False, error=LoginFailed())
    if user.locked_until and user.locked_until > now:
        await audit.record(
            session,
            None,
            "auth.login",
            "user",
            user.id,
            result=audit.FAILURE,
            actor_name=user.username,
            ip=ip,
            details={"reason": "locked"},
        )
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return LoginOutcome(False, error=AccountLocked(params={"minutes": minutes}))
    if not await passwords.verify_password_async(settings, user.password_hash, password):
        error = await _record_failure(session, settings, user, ip, "bad_password")
        return LoginOutcome(False, error=error, user_id=user.id)
    stage = await _stage_after_password(session, settings, user)
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=token_digest(token),
            user_id=user.id,
            stage=stage,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.session_max_hours),
            ip=ip[:64],
            user_agent=user_agent[:256],
        )
    )
    if stage != STAGE_MFA:
        user.last_login_at = now
        user.locked_until = None
    await audit.record(
        session,
        None,
        "auth.login",
        "user",
        user.id,
        actor_name=user.username,
        ip=ip,
        details={"stage": stage},
    )
    return LoginOutcome(True, token=token, stage=stage, user_id=user.id)


@dataclass(frozen=True)
class ActiveSession:
    web: WebSession
    user: User
    principal: Principal


async def resolve_session(
    session: AsyncSession, settings: Settings, token: str, *, ip: str = ""
) -> ActiveSession | None:
    """The live session for a cookie, or None (unknown, revoked, expired or idle too long)."""
    row = (
        await session.execute(
            select(WebSession, User, OrgNode)
            .join(User, User.id == WebSession.user_id)
            .join(OrgNode, OrgNode.id == User.org_id)
            .where(WebSession.id == token_digest(token))
        )
    ).first()
    if row is None:
        return None
    web, user, org = row
    keep(session, web, user, org)
    now = utcnow()
    idle = now - web.last_seen_at > timedelta(minutes=settings.session_idle_minutes)
    if web.revoked or not user.active or web.expires_at <= now or idle:
        if not web.revoked:
            web.revoked = True
            await audit.record(
                session,
                None,
                "auth.session_end",
                "user",
                user.id,
                actor_name=user.username,
                ip=ip,
                details={"reason": "idle" if idle else "expired"},
            )
        return None
    if now - web.last_seen_at > TOUCH_EVERY:
        web.last_seen_at = now
    roles = await roles_of(session, user.id)
    principal = make_principal(user, org, roles, via="session", ip=ip, session_id=web.id)
    return ActiveSession(web, user, principal)


async def logout(session: AsyncSession, active: ActiveSession) -> None:
    active.web.revoked = True
    await audit.record(session, active.principal, "auth.logout", "user", active.user.id)


def _verify_code(secret: str, code: str, last_step: int | None) -> int | None:
    """The time step a code matches (±1 step of drift), or None. A step is used once."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(utcnow().timestamp()) // totp.interval
    for step in (now_step, now_step - 1, now_step + 1):
        if totp.at(step * totp.interval) == code and (last_step is None or step > last_step):
            return step
    return None


async def verify_second_factor(
    session: AsyncSession, settings: Settings, active: ActiveSession, code: str
) -> LoginOutcome:
    """The TOTP step of signing in. Wrong codes count towards the lockout like passwords."""
    user = (
        await session.execute(select(User).where(User.id == active.user.id).with_for_update())
    ).scalar_one()
    if active.web.stage != STAGE_MFA or not user.totp_secret:
        return LoginOutcome(False, error=BadCode())
    now = utcnow()
    if user.locked_until and user.locked_until > now:
        active.web.revoked = True
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return LoginOutcome(False, error=AccountLocked(params={"minutes": minutes}))
    secret = _cipher(settings).decrypt(user.totp_secret, associated=str(user.id).encode())
    step = _verify_code(secret, code, user.totp_last_step)
    if step is None:
        error = await _record_failure(session, settings, user, active.principal.ip, "bad_totp")
        if isinstance(error, AccountLocked):
            active.web.revoked = True
        return LoginOutcome(False, error=BadCode() if isinstance(error, LoginFailed) else error)
    user.totp_last_step = step
    user.last_login_at = utcnow()
    active.web.stage = _stage_after_mfa(settings, user)
    await audit.record(session, active.principal, "auth.2fa", "user", user.id)
    return LoginOutcome(True, stage=active.web.stage, user_id=user.id)


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str


async def start_enrolment(
    session: AsyncSession, settings: Settings, active: ActiveSession
) -> Enrolment:
    """Offer a new TOTP secret; it takes effect once a code from it is confirmed."""
    user = active.user
    secret = pyotp.random_base32()
    user.totp_pending = _cipher(settings).encrypt(secret, associated=str(user.id).encode())
    await audit.record(session, active.principal, "auth.2fa_enrol_start", "user", user.id)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=settings.totp_issuer)
    return Enrolment(secret, uri)


async def pending_enrolment(settings: Settings, user: User) -> Enrolment | None:
    if not user.totp_pending:
        return None
    secret = _cipher(settings).decrypt(user.totp_pending, associated=str(user.id).encode())
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=settings.totp_issuer)
    return Enrolment(secret, uri)


async def confirm_enrolment(
    session: AsyncSession,
    settings: Settings,
    active: ActiveSession,
    code: str,
    password: str = "",
) -> LoginOutcome:
    """Confirm a new TOTP secret with a code from it. Replacing a confirmed secret also needs
    the account's password, so a session left open cannot move the second factor."""
    user = active.user
    if user.totp_secret and not await passwords.verify_password_async(
        settings, user.password_hash, password
    ):
        error = await _record_failure(
            session, settings, user, active.principal.ip, "bad_password_2fa_change"
        )
        return LoginOutcome(False, error=error)
    pending = await pending_enrolment(settings, user)
    if pending is None:
        return LoginOutcome(False, error=BadCode())
    step = _verify_code(pending.secret, code, None)
    if step is None:
        return LoginOutcome(False, error=BadCode())
    user.totp_secret, user.totp_pending, user.totp_last_step = user.totp_pending, None, step
    if active.web.stage == STAGE_ENROL:
        active.web.stage = _stage_after_mfa(settings, user)
        user.last_login_at = utcnow()
    await audit.record(session, active.principal, "auth.2fa_enrol", "user", user.id)
    return LoginOutcome(True, stage=active.web.stage, user_id=user.id)


async def change_password(
    session: AsyncSession, settings: Settings, active: ActiveSession, old: str, new: str
) -> DomainError | None:
    """Change the signed-in user's password. A wrong current password is returned (not
    raised) after counting towards the lockout, so guessing here is limited too."""
    user = active.user
    if not await passwords.verify_password_async(settings, user.password_hash, old):
        error = await _record_failure(
            session, settings, user, active.principal.ip, "bad_password_change"
        )
        if isinstance(error, AccountLocked):
            active.web.revoked = True
            return error
        return ValidationFailed("The current password is wrong.", field="old_password")
    await set_password(session, settings, user, new)
    user.must_change_password = False
    if active.web.stage == STAGE_PASSWORD:
        active.web.stage = STAGE_FULL
    # Other sessions of this user end; this one stays.
    await session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.id != active.web.id)
        .values(revoked=True)
    )
    await audit.record(session, active.principal, "user.change_password", "user", user.id)
    return None


async def purge_sessions(session: AsyncSession, settings: Settings) -> int:
    """Mark sessions idle or past their end as revoked; drop failure counters older than a
    day (the lockout window is minutes)."""
    now = utcnow()
    idle_since = now - timedelta(minutes=settings.session_idle_minutes)
    result = await session.execute(
        update(WebSession)
        .where(
            WebSession.revoked.is_(False),
            (WebSession.expires_at <= now) | (WebSession.last_seen_at < idle_since),
        )
        .values(revoked=True)
    )
    await session.execute(delete(LoginFailure).where(LoginFailure.at < now - timedelta(days=1)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
