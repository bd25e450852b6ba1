"""Private keys at rest: AES-256-GCM (from ``cryptography``) with the kid as associated
data, so a ciphertext moved to another row does not decrypt."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authserver.errors import KeyDecryptionError


def encrypt_private_key(kek: bytes, kid: str, pem: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, pem, kid.encode())


def decrypt_private_key(kek: bytes, kid: str, blob: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(blob[:12], blob[12:], kid.encode())
    except InvalidTag:
        raise KeyDecryptionError(
            f"AUTHSERVER_KEY_ENCRYPTION_KEY does not decrypt signing key {kid}: "
            "wrong key-encryption key, or the row was altered"
        ) from None
