"""Who may call the admin API (``/admin/...``, ``/admin/audiences/...``).

A token issued for ``{issuer}/admin`` (RFC 8707 ``resource``; only first-party clients
and clients registered with ``authserver:admin`` may ask for it) carrying the scope
``authserver:admin``, and either

- a user who holds the ``authserver.admin`` permission now (read from the database, so
  taking it away works at once) and signed in with a password within
  ``AUTHSERVER_ADMIN_AUTH_MAX_AGE`` (step-up, RFC 9470), or
- a client's own token (client credentials, for automation) from a client still
  registered with the scope ``authserver:admin``.

Every change is audited with ``actor()``: the admin's user id, or the client id.
"""

from __future__ import annotations

from authserver.accounts.services import ADMIN_PERMISSION
from authserver.audiences.own import ADMIN_API
from authserver.bearer import authenticate, current_token

require_admin = authenticate(ADMIN_API, user=False, permission=ADMIN_PERMISSION, step_up=True)


def actor() -> str:
    """The acting admin, as the audit log names them."""
    return current_token().actor
