"""``python -m authserver``: the same as the ``authserver`` command."""

from authserver.cli import main

main()
