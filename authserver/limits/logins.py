"""Failed password logins, counted so that guessing is slow and nobody can lock others out.

Three counters over one window (AUTHSERVER_LOGIN_LOCKOUT_SECONDS, default 15 min):
- phone + client IP (AUTHSERVER_LOGIN_MAX_FAILURES, 10): the one an honest user meets;
  it does not stop the owner of the phone signing in from another address;
- phone alone (AUTHSERVER_LOGIN_MAX_FAILURES_PER_PHONE, 50): caps guessing spread over
  many addresses; deliberately loose, since anyone can spend it against a victim;
- client IP alone (AUTHSERVER_LOGIN_MAX_FAILURES_PER_IP, 100): caps one address trying
  many phones (credential stuffing).
Every attempt takes a unit before the password is checked (so parallel guesses cannot
overshoot); a correct password clears the phone counters and gives the IP unit back. The
IP counter is never cleared by a success, or an attacker would reset it by signing in to
an account of their own. Unknown and unparseable phones are counted exactly like known
ones, so a throttled answer says nothing about which phones exist.

If the rate-limit storage is unreachable, password logins are not throttled (logged as an
error): argon2id still bounds guessing, and a Redis outage must not stop every sign-in.
OTP sends, which cost money, fail closed instead (see otp/services.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from authserver.accounts.phones import normalize_phone
from authserver.context import budgets, keyed_hash, settings
from authserver.errors import (
    InvalidPhoneNumber,
    LimiterUnavailable,
    RateLimited,
    TooManyFailedLogins,
)
from authserver.limits.budgets import Budget

log = logging.getLogger(__name__)


def phone_key(phone_text: str) -> str:
    """A stable, non-reversible key for a phone (the storage never holds the number)."""
    try:
        phone = normalize_phone(phone_text, settings().default_region)
    except InvalidPhoneNumber:
        phone = "unparseable:" + str(phone_text).strip()[:64]
    return keyed_hash("phone:" + phone).hex()[:32]


@dataclass
class LoginAttempt:
    phone_budgets: list[Budget]
    ip_budget: Budget
    reserved: bool = False

    @classmethod
    def of(cls, phone_text: str, ip: str) -> LoginAttempt:
        s = settings()
        window = s.login_lockout_seconds
        key = phone_key(phone_text)
        return cls(
            phone_budgets=[
                Budget("login-phone-ip", s.login_max_failures, window, f"{key}|{ip}"),
                Budget("login-phone", s.login_max_failures_per_phone, window, key),
            ],
            ip_budget=Budget("login-ip", s.login_max_failures_per_ip, window, ip),
        )

    def begin(self) -> None:
        """Count this attempt as a failure until it succeeds; raise when throttled."""
        try:
            budgets().reserve([*self.phone_budgets, self.ip_budget])
        except RateLimited as limited:
            raise TooManyFailedLogins(limited.retry_after) from None
        except LimiterUnavailable:
            log.error("rate-limit storage unreachable: password logins are not throttled")
            return
        self.reserved = True

    def succeeded(self) -> None:
        if not self.reserved:
            return
        try:
            budgets().clear(self.phone_budgets)
            budgets().refund([self.ip_budget])
        except LimiterUnavailable:
            log.error("rate-limit storage unreachable: login counters not reset")


def forget_failures(phone_text: str) -> None:
    """Clear the per-phone failure count (the owner just proved control of the phone)."""
    s = settings()
    key = phone_key(phone_text)
    try:
        budgets().clear(
            [Budget("login-phone", s.login_max_failures_per_phone, s.login_lockout_seconds, key)]
        )
    except LimiterUnavailable:
        log.error("rate-limit storage unreachable: login counters not reset")
