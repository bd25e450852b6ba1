"""The code's own rules, read from its source: every exception authserver raises on
purpose sits under ``AuthserverError`` in authserver/errors.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from authlib.oauth2 import OAuth2Error

import authserver
from authserver.errors import AuthserverError

# authserver.resource is the library downstream services import on their own: its
# failures are Authlib's (OAuth2Error), and it imports nothing else of authserver.
STANDALONE = {"authserver.resource"}
# Importing these runs them (the command line; an app built from the environment).
ENTRY_POINTS = {"authserver.__main__", "authserver.wsgi"}


def modules() -> list[str]:
    names = [
        info.name
        for info in pkgutil.walk_packages(authserver.__path__, "authserver.")
        if ".migrations" not in info.name and info.name not in ENTRY_POINTS
    ]
    return ["authserver", *names]


def test_every_exception_is_an_authserver_error_defined_in_errors():
    strays = []
    for name in modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BaseException):
                continue
            if issubclass(cls, OAuth2Error):
                continue  # Authlib's protocol errors, answered by Authlib itself
            if name in STANDALONE:
                continue
            home = name in ("authserver.errors", "authserver.bearer")  # bearer: its own family
            if not home or not issubclass(cls, AuthserverError):
                strays.append(f"{name}.{cls_name}")
    assert strays == []
