"""Password hashing: argon2id for everything new; Django's PBKDF2 hashes wrapped at import.

The argon2id parameters come from settings (defaults: OWASP's m=19 MiB, t=2, p=1, chosen
because login throughput is bounded by this hash and p=1 leaves the other core to the
other worker). A hash made with other parameters, or a wrapped Django hash, is replaced
by a plain argon2id hash at the next successful login.

**Imported Django hashes are wrapped.** ``pbkdf2_sha256$<n>$<salt>$<digest>`` is stored
as ``argon2id+pbkdf2_sha256$<n>$<salt>$<argon2id of digest>`` (``wrap``): at rest it is as
hard to crack as any argon2id hash, and a check computes PBKDF2 then argon2id over its
output. The import command and migration 0010 wrap; nothing stores a bare Django hash.

**Every failed check costs the same.** Checking a wrapped hash costs PBKDF2 (hundreds of
milliseconds at Django's work factors) plus argon2id; an unknown phone or a wrong
password for an argon2id hash would cost argon2id alone, so timing would tell which
phones belong to imported users. So while imported hashes remain (``pbkdf2_work``, the
PBKDF2 iterations of one of them; accounts/services.py looks it up), a failed check of
any other kind also computes PBKDF2 with as many iterations (Django's own
``harden_runtime`` does the same between work factors). A successful check pays nothing
extra: it reveals nothing to someone who does not know the password. The extra work is
bounded by the failed-login throttle (limits/logins.py) and ends once every imported
user has signed in once.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

DJANGO_PBKDF2 = "pbkdf2_sha256$"
WRAPPED_PBKDF2 = "argon2id+pbkdf2_sha256$"
ARGON2ID = "$argon2id$"
MAX_PBKDF2_ITERATIONS = 10_000_000
# How stale a process's idea of the wrapped hashes' work may be: an import is matched
# within this time, and the lookup (one indexed-free query) runs at most this often.
PBKDF2_WORK_REFRESH_SECONDS = 60


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
        self._pbkdf2_work = (0, float("-inf"))  # (iterations, when looked up)

    def pbkdf2_work(self, lookup: Callable[[], int]) -> int:
        """The iterations of the wrapped hashes still stored, from ``lookup`` at most every
        PBKDF2_WORK_REFRESH_SECONDS."""
        work, looked_up = self._pbkdf2_work
        now = time.monotonic()
        if now - looked_up >= PBKDF2_WORK_REFRESH_SECONDS:
            work = lookup()
            self._pbkdf2_work = (work, now)
        return work

    def hash(self, password: str) -> str:
        with self._one_at_a_time:
            return self._hasher.hash(password)

    def wrap(self, django_hash: str) -> str | None:
        """The stored form of an imported Django PBKDF2 hash; None when it is not one."""
        parsed = _parse_pbkdf2(django_hash, DJANGO_PBKDF2)
        if parsed is None:
            return None
        iterations, salt, digest = parsed
        return f"{WRAPPED_PBKDF2}{iterations}${salt}${self.hash(digest)}"

    def is_wrapped(self, stored: str, django_hash: str) -> bool:
        """Whether ``stored`` is ``django_hash`` wrapped (a re-import changes nothing)."""
        wrapped = _parse_pbkdf2(stored, WRAPPED_PBKDF2)
        original = _parse_pbkdf2(django_hash, DJANGO_PBKDF2)
        if wrapped is None or original is None or wrapped[:2] != original[:2]:
            return False
        return self._verify_argon2(wrapped[2], original[2])

    def verify(self, stored: str | None, password: str, *, pbkdf2_work: int = 0) -> bool:
        """True when ``password`` matches ``stored``. A failure costs the same whatever
        ``stored`` is (absent, argon2id, wrapped, corrupt) when ``pbkdf2_work`` is the
        iteration count of the wrapped hashes still stored (see above)."""
        if stored is not None and stored.startswith(WRAPPED_PBKDF2):
            parsed = _parse_pbkdf2(stored, WRAPPED_PBKDF2)
            if parsed is not None:
                iterations, salt, inner = parsed
                return self._verify_argon2(inner, _pbkdf2(password, salt, iterations))
        if stored is not None and stored.startswith(ARGON2ID):
            if self._verify_argon2(stored, password):
                return True
        else:  # no usable hash: the same work as a real check
            self._verify_argon2(self._dummy, password)
        _pbkdf2(password, "authserver-timing-equaliser", pbkdf2_work)
        return False

    def needs_rehash(self, stored: str) -> bool:
        if not stored.startswith(ARGON2ID):
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


def wrapped_iterations(stored: str) -> int:
    """The PBKDF2 iterations of a wrapped hash (0 for any other)."""
    parsed = _parse_pbkdf2(stored, WRAPPED_PBKDF2)
    return parsed[0] if parsed else 0


def _parse_pbkdf2(stored: str, prefix: str) -> tuple[int, str, str] | None:
    """``<prefix><iterations>$<salt>$<rest>``, or None when malformed."""
    if not stored.startswith(prefix):
        return None
    try:
        iterations, salt, rest = stored[len(prefix) :].split("$", 2)
        rounds = int(iterations)
    except ValueError:
        return None
    if not 1 <= rounds <= MAX_PBKDF2_ITERATIONS or not salt or not rest:
        return None
    return rounds, salt, rest


def _pbkdf2(password: str, salt: str, iterations: int) -> str:
    """Django's PBKDF2-SHA256 digest, base64 as Django writes it ("" for no work)."""
    if iterations < 1:
        return ""
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return base64.b64encode(derived).decode("ascii")
