"""One rule for database transactions (docs/architecture.md).

- Services change state and flush; they never commit.
- The boundary commits once: a request when its view answers below 400 (``App``), a
  command when it returns (authserver/cli.py). An error answer, or an exception, rolls
  the whole request back: nothing half-done is kept.
- What a failure must keep although the request is about to fail (the audit event of a
  refused sign-in, a spent code's attempt, the revocation of a session whose refresh
  token came back) is committed by ``keep_before_failing()``, named so that every such
  place can be found.
- A service that calls something slow and outside (the SMS gateway) commits what it
  wrote first with ``commit_before_calling_out()``, so no transaction stays open while
  it waits.
- Work that must follow a commit and never a rollback (dropping the process's cached
  signing keys) is registered with ``after_commit``.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response
from sqlalchemy import event
from sqlalchemy.orm import Session

from authserver.extensions import db

_AFTER_COMMIT = "authserver.after_commit"


class App(Flask):
    """Flask, with the request's transaction committed when its view has answered."""

    def dispatch_request(self) -> Response:  # type: ignore[override]
        response = self.make_response(super().dispatch_request())
        # Here rather than in an after_request hook: a failing commit is then the view's
        # failure, answered by the error handlers (503 when the database is away).
        end_transaction(response.status_code)
        return response


def end_transaction(status: int) -> None:
    """Commit the request's work if its answer is a success (or a redirect), else roll
    it back."""
    session = db.session()
    if not session.in_transaction():
        return
    if status < 400:
        session.commit()
    else:
        session.rollback()


def keep_before_failing() -> None:
    """Commit now what the failure about to be raised must not take with it."""
    db.session.commit()


def commit_before_calling_out() -> None:
    """Commit now, before a slow call outside (an SMS): no transaction waits on it."""
    db.session.commit()


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current transaction commits (not if it rolls back)."""
    db.session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_commit(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:  # a savepoint's rollback keeps the transaction
        session.info.pop(_AFTER_COMMIT, None)
