"""What many tests do, written once: run service code as a command does, and the
requests every flow needs (sign in, introspect, a bearer header)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from authserver.extensions import db


@contextmanager
def committed(app) -> Iterator[None]:
    """Run service code in ``app``'s context and commit once at the end, as a command
    or a request does (authserver/transactions.py)."""
    with app.app_context():
        yield
        db.session.commit()
