"""Password hashing: argon2id for everything new, Django's PBKDF2 accepted for imports.

The argon2id parameters come from settings (defaults: OWASP's m=19 MiB, t=2, p=1, chosen
because login throughput is bounded by this hash and p=1 leaves the other core to the
other worker). A hash made with other parameters, or a Django hash, is replaced at the
next successful login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

DJANGO_PBKDF2 = "pbkdf2_sha256$"


class Passwords:
    def __init__(self, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        # One argon2id computation at a time per process (one process per core): the
        # threads of a process computing 19 MiB hashes side by side evict each other from
        # the CPU caches and each hash takes longer; measured with 4 threads on 2 cores,
        # logins reached 44% of what argon2id alone allows (bench/README.md). Other
        # requests do not wait: only password checks queue here.
        self._one_at_a_time = threading.Lock()
        # Verified against when the phone is unknown, so both answers cost the same.
        self._dummy = self._hasher.hash("authserver-timing-equaliser")

    def hash(self, password: str) -> str:
        with self._one_at_a_time:
            return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; an absent hash costs the same time."""
        if stored is None:
            self._verify_argon2(self._dummy, password)
            return False
        if stored.startswith(DJANGO_PBKDF2):
            return _verify_django_pbkdf2(stored, password)
        return self._verify_argon2(stored, password)

    def needs_rehash(self, stored: str) -> bool:
        if stored.startswith(DJANGO_PBKDF2):
            return True
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def _verify_argon2(self, stored: str, password: str) -> bool:
        try:
            with self._one_at_a_time:
                return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _verify_django_pbkdf2(stored: str, password: str) -> bool:
    """Django's ``pbkdf2_sha256$<iterations>$<salt>$<base64 sha256>`` format."""
    try:
        _, iterations, salt, expected = stored.split("$", 3)
        rounds = int(iterations)
    except ValueError:
        return False
    if not 1 <= rounds <= 10_000_000:
        return False
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), rounds)
    return hmac.compare_digest(base64.b64encode(derived).decode("ascii"), expected)
