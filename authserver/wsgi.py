"""The WSGI entry point that ``authserver serve`` hands to granian (any WSGI server works)."""

from authserver import create_app

app = create_app()
