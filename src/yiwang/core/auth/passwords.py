"""Password hashing (argon2id) and the password policy (GB/T 22239 level 3)."""

from __future__ import annotations

import asyncio
import string
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from yiwang.core.errors import ValidationFailed
from yiwang.core.settings import Settings


@lru_cache(maxsize=4)
def hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def _hasher(settings: Settings) -> PasswordHasher:
    return hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


def hash_password(settings: Settings, password: str) -> str:
    return _hasher(settings).hash(password)


def verify_password(settings: Settings, password_hash: str, password: str) -> bool:
    try:
        return _hasher(settings).verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password_async(settings: Settings, password_hash: str, password: str) -> bool:
    """Verify in a worker thread: argon2 is deliberately slow and must not stall the loop."""
    return await asyncio.to_thread(verify_password, settings, password_hash, password)


#: A hash of nothing anybody types, checked for unknown users so that timing does not tell
#: whether a username exists.
def dummy_verify(settings: Settings) -> None:
    verify_password(
        settings, _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_kib), "x"
    )


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return hasher(time_cost, memory_kib).hash("not a password anyone uses")


MIX_MESSAGE = (
    "The password must mix at least {classes} of: lower case, upper case, digits, symbols."
)
CLASSES = (
    set(string.ascii_lowercase),
    set(string.ascii_uppercase),
    set(string.digits),
)


def character_classes(password: str) -> int:
    count = sum(1 for cls in CLASSES if any(c in cls for c in password))
    if any(not (c.isascii() and c.isalnum()) for c in password):
        count += 1  # symbols (and any non-ASCII character) form the fourth class
    return count


def check_policy(settings: Settings, password: str, username: str = "") -> None:
    """Raise ``ValidationFailed`` (field ``password``) if the password breaks the policy."""
    if len(password) < settings.password_min_length:
        raise ValidationFailed(
            "The password must be at least {length} characters long.",
            field="password",
            params={"length": settings.password_min_length},
        )
    if len(password) > 256:
        raise ValidationFailed(
            "The password must be at most 256 characters long.", field="password"
        )
    if character_classes(password) < settings.password_min_classes:
        raise ValidationFailed(
            MIX_MESSAGE, field="password", params={"classes": settings.password_min_classes}
        )
    if username and username.lower() in password.lower():
        raise ValidationFailed("The password must not contain the username.", field="password")
