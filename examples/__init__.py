"""Example downstream services that verify authserver tokens."""
