"""SM3 hashes and MACs, SM4-GCM encryption (GB/T 32905, GB/T 32907), via ``cryptography``."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_PREFIX = "sm4gcm1:"


def sm3_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def hmac_sm3_hex(key: bytes, data: bytes | str) -> str:
    """A keyed SM3 hash: lets us look up an exact value without storing it in clear."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize().hex()


class DecryptionError(ValueError):
    pass


class SM4Cipher:
    """Authenticated SM4 in GCM mode; ciphertexts are text, safe for any column."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("SM4 keys are 16 bytes")
        self._key = key

    def encrypt(self, plaintext: str, associated: bytes = b"") -> str:
        nonce = os.urandom(12)
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated)
        body = encryptor.update(plaintext.encode("utf-8")) + encryptor.finalize()
        return _PREFIX + base64.b64encode(nonce + body + encryptor.tag).decode("ascii")

    def decrypt(self, token: str, associated: bytes = b"") -> str:
        if not token.startswith(_PREFIX):
            raise DecryptionError("not an SM4 ciphertext")
        raw = base64.b64decode(token[len(_PREFIX) :])
        nonce, body, tag = raw[:12], raw[12:-16], raw[-16:]
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(associated)
        try:
            return (decryptor.update(body) + decryptor.finalize()).decode("utf-8")
        except InvalidTag as exc:
            raise DecryptionError("ciphertext was altered or the key is wrong") from exc
