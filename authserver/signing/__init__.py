"""Signing keys: storage encrypted at rest, the in-process key ring, the JWKS."""
