"""The OAuth 2 authorization server: clients, grants, sessions, tokens, endpoints."""
