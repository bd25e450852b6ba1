"""Counted budgets (SMS sends, failed logins) in the rate-limit storage.

The storage is AUTHSERVER_RATELIMIT_STORAGE_URL: ``memory://`` counts per process,
``redis://`` is shared by every instance. Each app gets its own storage object here: the
Flask-Limiter extension is a module-level singleton whose storage is replaced by every
``init_app``, so several apps in one process (tests, ``build_app``) would share the last
one's storage.

Several budgets guard one action, and ``limits`` can only change one counter atomically.
``reserve`` therefore (1) tests every budget and refuses at once, spending nothing, when
one is empty; then (2) hits them one by one, each hit an atomic increment that reports
whether it stayed within its limit; if a concurrent request won the last unit of one,
the units already taken are given back and the request is refused. So no budget is ever
exceeded, even by parallel requests (test-then-hit alone would let N parallel requests
through); the price is that for the few milliseconds between a losing hit and its
refund another request may be refused that would have fitted. A failed action (the SMS
gateway is down) gives its units back with ``refund``, so the user's quota is not burned.
Windows are fixed and start at the first unit spent (``limits``' fixed window), so
"1 per 60 s" is exactly a 60-second cooldown.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from authserver.errors import LimiterUnavailable, RateLimited

NAMESPACE = "authserver"


@dataclass(frozen=True)
class Budget:
    """``amount`` units per ``seconds`` for one identifier (a hashed phone, an IP, ...)."""

    name: str
    amount: int
    seconds: int
    identifier: str

    @property
    def item(self) -> RateLimitItem:
        return RateLimitItemPerSecond(self.amount, self.seconds, namespace=NAMESPACE)

    @property
    def key(self) -> str:
        return self.item.key_for(self.name, self.identifier)


class Budgets:
    def __init__(self, storage) -> None:
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(storage)

    @classmethod
    def from_url(cls, url: str) -> Budgets:
        options: dict = {"wrap_exceptions": True}
        if url.startswith(("redis://", "rediss://", "redis+unix://")):
            # A hung Redis must cost a request one second, not a worker.
            options.update(socket_connect_timeout=1, socket_timeout=1)
        return cls(storage_from_string(url, **options))

    def wait(self, budgets: Sequence[Budget]) -> int:
        """Seconds until every budget has a unit left; 0 when they all have one now."""
        try:
            waits = [
                self._reset_in(budget)
                for budget in budgets
                if not self.strategy.test(budget.item, budget.name, budget.identifier)
            ]
        except StorageError as error:
            raise LimiterUnavailable() from error
        return max(waits, default=0)

    def reserve(self, budgets: Sequence[Budget]) -> list[Budget]:
        """Take one unit of every budget, or none at all and raise ``RateLimited``."""
        wait = self.wait(budgets)
        if wait:
            raise RateLimited(wait)
        taken: list[Budget] = []
        try:
            for budget in budgets:
                taken.append(budget)
                if not self.strategy.hit(budget.item, budget.name, budget.identifier):
                    self.refund(taken)  # lost a race for the last unit
                    raise RateLimited(self._reset_in(budget))
        except StorageError as error:
            raise LimiterUnavailable() from error
        return taken

    def refund(self, budgets: Sequence[Budget]) -> None:
        """Give back one unit of each budget (the action they paid for did not happen)."""
        try:
            for budget in budgets:
                left = self.storage.incr(budget.key, budget.item.get_expiry(), amount=-1)
                if left < 0:  # the window ended in between: do not start one in credit
                    self.storage.clear(budget.key)
        except StorageError as error:
            raise LimiterUnavailable() from error

    def clear(self, budgets: Sequence[Budget]) -> None:
        try:
            for budget in budgets:
                self.storage.clear(budget.key)
        except StorageError as error:
            raise LimiterUnavailable() from error

    def _reset_in(self, budget: Budget) -> int:
        stats = self.strategy.get_window_stats(budget.item, budget.name, budget.identifier)
        return max(1, math.ceil(stats.reset_time - time.time()))


