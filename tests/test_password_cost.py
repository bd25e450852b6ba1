"""A failed password sign-in costs the same whoever the phone belongs to: nobody, a user
with an argon2id hash, or a user imported from the Django services whose PBKDF2 hash was
wrapped at import (authserver/accounts/passwords.py). Through HTTP, timed interleaved."""

from __future__ import annotations

import statistics
import time

from authserver.accounts.importing import import_django_users
from tests.conftest import PASSWORD, PHONE, django_pbkdf2
from tests.helpers import committed

IMPORTED_PHONE = "+33612000777"
UNKNOWN_PHONE = "+33612000888"
# Django 3.2's default work factor (4.2: 600,000; 5.0: 870,000): any of them is many
# times an argon2id check, which is what made imported users stand out.
DJANGO_ITERATIONS = 260_000
TRIES = 15


def test_unknown_phone_wrong_password_and_imported_user_cost_the_same(make_app, make_client, user):
    many = "100000"  # no throttle in the way of the measurement
    app = make_app(
        login_max_failures=many, login_max_failures_per_phone=many, login_max_failures_per_ip=many
    )
    client = make_client(grant_types=["password"], scope="profile")
    with committed(app):
        import_django_users(
            [
                {
                    "model": "accounts.user",
                    "pk": 1,
                    "fields": {
                        "phone": IMPORTED_PHONE,
                        "password": django_pbkdf2(PASSWORD, DJANGO_ITERATIONS),
                    },
                }
            ],
            actor="tests",
        )
    http = app.test_client()

    def failed_login(phone: str) -> float:
        started = time.perf_counter()
        response = http.post(
            "/oauth/token",
            data={"grant_type": "password", "username": phone, "password": "not it"},
            headers=client.basic,
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 400 and response.json["error"] == "invalid_grant"
        return elapsed

    phones = {"unknown phone": UNKNOWN_PHONE, "wrong password": PHONE, "imported": IMPORTED_PHONE}
    for phone in phones.values():  # warm up every path once
        failed_login(phone)
    times: dict[str, list[float]] = {kind: [] for kind in phones}
    for _ in range(TRIES):
        for kind, phone in phones.items():
            times[kind].append(failed_login(phone))
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    assert max(medians.values()) / min(medians.values()) <= 1.5, medians

    # And the imported user still signs in with the Django password.
    right = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": IMPORTED_PHONE, "password": PASSWORD},
        headers=client.basic,
    )
    assert right.status_code == 200, right.json
