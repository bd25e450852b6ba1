"""Sending and checking phone codes; sign-in (and sign-up) and password reset with them.

Rules (settings: docs/otp.md, docs/limits.md): 6 digits from ``secrets``; stored only as
an HMAC bound to the challenge id; valid AUTHSERVER_OTP_TTL seconds; single use; every comparison
counts against AUTHSERVER_OTP_MAX_ATTEMPTS, after which the code is dead even if right;
a new code replaces every older code of the phone; compared in constant time.

Sending spends four budgets (budgets.py): the resend cooldown and the daily cap of the
phone, the hourly cap of the client IP and the hourly global SMS budget. They are taken
first; then the challenge is written (committed), then the SMS goes out. A failed write
or send gives the budgets back (a failed send also deletes its unsent code): an outage
costs neither an SMS nor the user's cooldown. When the rate-limit storage
is unreachable no code is sent (503): the limiter being blind must not open the SMS
account to pumping.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import phonenumbers
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from authserver.accounts.models import User
from authserver.accounts.phones import normalize_phone
from authserver.accounts.services import create_user, refuse_disabled, set_password
from authserver.audit import record_event
from authserver.context import budgets, keyed_hash, settings, sms_sender
from authserver.errors import (
    AccountDisabled,
    InvalidOtp,
    InvalidPhoneNumber,
    OtpRegionNotAllowed,
    PasswordRejected,
    RateLimited,
    SmsDeliveryFailed,
)
from authserver.extensions import db, utcnow
from authserver.limits.budgets import Budget
from authserver.limits.logins import forget_failures, phone_key
from authserver.net import client_ip
from authserver.ops.metrics import (
    OTP_BLOCKED,
    OTP_SEND_FAILURES,
    OTP_SENT,
    OTP_VERIFY_FAILURES,
)
from authserver.otp.models import OtpChallenge
from authserver.transactions import commit_before_calling_out, keep_before_failing

LOGIN = "login"
PASSWORD_RESET = "password_reset"
PURPOSES = (LOGIN, PASSWORD_RESET)  # what POST /oauth/otp may ask for
# Asked for by a signed-in user only (POST /account/phone), for the new number.
PHONE_CHANGE = "phone_change"
# Asked for by a signed-in user without a password (POST /account/code), sent to the
# account's current number: it proves a sensitive change is the holder's.
ACCOUNT_CHANGE = "account_change"
CODE_DIGITS = 6
MESSAGES = {
    LOGIN: "Your sign-in code is {code}. It expires in {minutes} min. Never share it.",
    PASSWORD_RESET: "Your password reset code is {code}. It expires in {minutes} min.",
    PHONE_CHANGE: "Your code to confirm this new phone number is {code}. "
    "It expires in {minutes} min.",
    ACCOUNT_CHANGE: "Your code to confirm a change to your account is {code}. "
    "It expires in {minutes} min. Never share it.",
}


@dataclass(frozen=True)
class CodeSent:
    phone: str
    expires_in: int
    retry_after: int  # seconds until this phone may ask for another code
    code: str | None = None  # only with AUTHSERVER_OTP_EXPOSE_CODE (never in production)


def send_budgets(phone: str, ip: str) -> list[Budget]:
    """Most specific first: a request that loses a race gives back the least."""
    s = settings()
    key = phone_key(phone)
    return [
        Budget("otp-cooldown", 1, s.otp_resend_cooldown, key),
        Budget("otp-phone-day", s.otp_max_per_phone_per_day, 24 * 3600, key),
        Budget("otp-ip-hour", s.otp_max_per_ip_per_hour, 3600, ip),
        Budget("otp-global-hour", s.otp_global_per_hour, 3600, "all"),
    ]


def start_challenge(phone_text: str, purpose: str = LOGIN, *, ip: str | None = None) -> CodeSent:
    """Send a new code to a mobile number.

    Raises InvalidPhoneNumber (not a valid mobile number), OtpRegionNotAllowed,
    RateLimited (with ``retry_after``), SmsDeliveryFailed or LimiterUnavailable (503s)."""
    if purpose not in MESSAGES:
        raise ValueError(f"unknown purpose {purpose!r}")
    s = settings()
    phone = normalize_phone(phone_text, s.default_region, mobile_only=True)
    if (
        s.otp_regions
        and phonenumbers.region_code_for_number(phonenumbers.parse(phone)) not in s.otp_regions
    ):
        OTP_BLOCKED.labels("region").inc()
        raise OtpRegionNotAllowed()

    wanted = send_budgets(phone, ip or client_ip())
    try:
        taken = budgets().reserve(wanted)
    except RateLimited:
        # Counted here, not in a view: the seed endpoints send codes too.
        OTP_BLOCKED.labels("rate_limit").inc()
        raise
    challenge_id = uuid.uuid4()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    message = MESSAGES[purpose].format(code=code, minutes=max(1, s.otp_ttl // 60))
    now = utcnow()
    # The code is written before it is sent: an outage costs no SMS, and the budgets
    # come back (the cooldown included) when the write fails.
    try:
        db.session.add(
            OtpChallenge(
                id=challenge_id,
                phone=phone,
                purpose=purpose,
                code_hash=_code_hash(challenge_id, code),
                created_at=now,
                expires_at=now + timedelta(seconds=s.otp_ttl),
                attempts=0,
            )
        )
        commit_before_calling_out()
    except BaseException:
        db.session.rollback()
        budgets().refund(taken)
        raise
    # No database transaction is open while the gateway is called (it may take seconds).
    try:
        sms_sender().send(phone, message, reference=str(challenge_id))
    except BaseException as error:
        budgets().refund(taken)
        db.session.execute(delete(OtpChallenge).where(OtpChallenge.id == challenge_id))
        if isinstance(error, SmsDeliveryFailed):
            OTP_SEND_FAILURES.inc()
            record_event("otp.sent", outcome="failure", purpose=purpose, reason="sms_gateway")
        keep_before_failing()
        raise
    # Sent: only the newest code of a phone is valid, older ones are gone. Should this
    # fail, the new code is the newest anyway, and what the user was sent still works.
    db.session.execute(
        delete(OtpChallenge).where(OtpChallenge.phone == phone, OtpChallenge.id != challenge_id)
    )
    user_id = db.session.scalar(select(User.id).where(User.phone == phone))
    record_event("otp.sent", user_id=user_id, purpose=purpose, challenge_id=str(challenge_id))
    db.session.flush()
    OTP_SENT.labels(purpose).inc()
    return CodeSent(
        phone=phone,
        expires_in=s.otp_ttl,
        retry_after=budgets().wait(wanted),
        code=code if s.otp_expose_code else None,
    )


def send_notice(phone: str, message: str, *, reference: str) -> None:
    """Tell a number something (no code, no budget: only the server decides to, after a
    change the holder confirmed). Raises SmsDeliveryFailed."""
    sms_sender().send(phone, message, reference=reference)


def verify_code(phone_text: str, code: str, purpose: str) -> str:
    """The E.164 phone whose newest code this is, now spent; else raise InvalidOtp.

    A failed try is committed before raising (the caller's error path rolls back). A
    success is left in the transaction for the caller to commit with what it does."""
    try:
        phone = normalize_phone(phone_text, settings().default_region)
    except InvalidPhoneNumber:
        raise InvalidOtp() from None
    challenge = db.session.scalar(
        select(OtpChallenge)
        .where(OtpChallenge.phone == phone)
        .order_by(OtpChallenge.created_at.desc())
        .limit(1)
    )
    if challenge is None:
        raise InvalidOtp()
    now = utcnow()
    matches = (
        isinstance(code, str)
        and len(code) <= 32
        and hmac.compare_digest(challenge.code_hash, _code_hash(challenge.id, code.strip()))
        and challenge.purpose == purpose
    )
    # One conditional UPDATE counts the try and, when right, spends the code: of parallel
    # tries no more than the allowed number are ever compared, and one wins at most.
    counted = db.session.execute(
        update(OtpChallenge)
        .where(
            OtpChallenge.id == challenge.id,
            OtpChallenge.attempts < settings().otp_max_attempts,
            OtpChallenge.consumed_at.is_(None),
            OtpChallenge.expires_at > now,
        )
        .values(attempts=OtpChallenge.attempts + 1, consumed_at=now if matches else None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if counted == 1 and matches:
        return phone
    record_event(
        "otp.verify",
        outcome="failure",
        purpose=purpose,
        challenge_id=str(challenge.id),
        reason="wrong_code" if counted else "dead_code",
    )
    keep_before_failing()
    OTP_VERIFY_FAILURES.inc()
    raise InvalidOtp()


def sign_in_with_code(
    phone_text: str,
    code: str,
    *,
    client_id: str | None,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """The user of this phone, created on first use (sign-up by phone) with the names
    given; an existing account keeps its own."""
    phone = verify_code(phone_text, code, LOGIN)
    user = db.session.scalar(select(User).where(User.phone == phone))
    if user is None:
        try:
            with db.session.begin_nested():  # a concurrent sign-up must not undo the spend
                user = create_user(phone, None, first_name=first_name, last_name=last_name)
                db.session.flush()
            record_event("user.created", actor="otp", user_id=user.id, client_id=client_id)
        except IntegrityError:
            user = db.session.scalar(select(User).where(User.phone == phone))
            assert user is not None
    refuse_disabled(user, event="login.otp", client_id=client_id)
    db.session.flush()
    return user


def reset_password(phone_text: str, code: str, new_password: str) -> int:
    """Set a new password with a reset code and end every session of the user.

    Returns how many sessions ended. A right code for a phone without an account is
    answered like a wrong code, so the endpoint does not tell which phones exist."""
    if not isinstance(new_password, str) or not 8 <= len(new_password) <= 256:
        raise PasswordRejected()  # before the code is spent
    phone = verify_code(phone_text, code, PASSWORD_RESET)
    user = db.session.scalar(select(User).where(User.phone == phone))
    if user is None:
        keep_before_failing()
        raise InvalidOtp()
    if not user.can_sign_in:
        record_event("password.reset", outcome="failure", user_id=user.id, reason="disabled")
        keep_before_failing()
        raise AccountDisabled()
    ended = set_password(user, new_password, reason="password_reset")
    record_event("password.reset", actor=str(user.id), user_id=user.id, sessions_revoked=len(ended))
    db.session.flush()
    forget_failures(phone)
    return len(ended)


def _code_hash(challenge_id: uuid.UUID, code: str) -> bytes:
    return keyed_hash(f"otp:{challenge_id}:{code}")
