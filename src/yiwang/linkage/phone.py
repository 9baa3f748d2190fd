"""Proving a citizen holds a phone number: a six-digit code sent by text message.

A code lives ``TTL`` and allows ``MAX_ATTEMPTS`` guesses; a number gets at most one code a
minute and ``PER_HOUR`` an hour. Only keyed hashes of the number and the code are stored.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.errors import RateLimited, ValidationFailed
from yiwang.core.security.crypto import sm3_hex
from yiwang.core.security.personal import PHONE_RE, PersonalData
from yiwang.core.settings import Settings
from yiwang.core.sms import get_sender
from yiwang.core.timeutil import utcnow
from yiwang.linkage.models import PhoneCode

TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
PER_HOUR = 5


def _check(phone: str) -> str:
    phone = (phone or "").strip()
    if not PHONE_RE.match(phone) or not phone.startswith("1"):
        raise ValidationFailed("Give a mobile phone number.", field="phone")
    return phone


async def send_code(session: AsyncSession, settings: Settings, phone: str) -> None:
    phone = _check(phone)
    key = PersonalData(settings).id_hash(phone)
    now = utcnow()
    recent = (
        await session.execute(
            select(func.count(), func.max(PhoneCode.created_at)).where(
                PhoneCode.phone_hash == key, PhoneCode.created_at >= now - timedelta(hours=1)
            )
        )
    ).one()
    if recent[0] >= PER_HOUR or (recent[1] and now - recent[1] < timedelta(minutes=1)):
        raise RateLimited("Wait a minute before asking for another code.")
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(PhoneCode(phone_hash=key, code_hash=sm3_hex(f"{key}:{code}"), expires_at=now + TTL))
    await session.flush()
    await get_sender(settings).send(
        phone, f"【一网统管】您的验证码是 {code}，10 分钟内有效。如非本人操作请忽略。"
    )


async def verify(session: AsyncSession, settings: Settings, phone: str, code: str) -> str:
    """The number, if the code is right (the code is then used up)."""
    phone = _check(phone)
    key = PersonalData(settings).id_hash(phone)
    row = (
        await session.execute(
            select(PhoneCode)
            .where(PhoneCode.phone_hash == key, PhoneCode.used.is_(False))
            .order_by(PhoneCode.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or row.expires_at < utcnow() or row.attempts >= MAX_ATTEMPTS:
        raise ValidationFailed("Ask for a new code.", field="code")
    if not secrets.compare_digest(row.code_hash, sm3_hex(f"{key}:{(code or '').strip()}")):
        row.attempts += 1  # the caller keeps this write: a failed guess counts
        await session.flush()
        raise ValidationFailed("The code is not right.", field="code")
    row.used = True
    return phone
