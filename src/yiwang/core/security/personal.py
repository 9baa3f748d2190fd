"""Personal data at rest: SM4 sealing bound to its table and column, and a keyed SM3 hash
for lookups (an ID number or a phone number is found by its hash, never by its plain text)."""

from __future__ import annotations

import functools
import re

from yiwang.core.security.crypto import SM4Cipher, hmac_sm3_hex
from yiwang.core.settings import Settings

#: a mainland mobile number, or a landline with its area code
PHONE_RE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")


@functools.lru_cache(maxsize=8)
def _lookup_key(key: bytes) -> bytes:
    """A key of its own for lookups, derived so that it never equals the cipher key."""
    return bytes.fromhex(hmac_sm3_hex(key, "yiwang:lookup-hash"))


class PersonalData:
    """The cipher and the keyed hash of one deployment's data key."""

    def __init__(self, settings: Settings) -> None:
        key = settings.data_key_bytes()
        self.cipher = SM4Cipher(key)
        self.hash_key = _lookup_key(key)

    def seal(self, table: str, column: str, value: str) -> str:
        return self.cipher.encrypt(value, associated=f"{table}.{column}".encode())

    def open(self, table: str, column: str, token: str) -> str:
        return self.cipher.decrypt(token, associated=f"{table}.{column}".encode())

    def id_hash(self, id_number: str) -> str:
        return hmac_sm3_hex(self.hash_key, id_number.strip().upper())
