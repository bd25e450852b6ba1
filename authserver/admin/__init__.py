"""The admin API (``/admin/...``): users, groups, permissions, clients, keys, audit log."""
