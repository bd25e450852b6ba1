"""A small property service protected by authserver access tokens (see README.md)."""

from examples.property_service.app import create_app

__all__ = ["create_app"]
