"""Users, groups, permissions, passwords and phone numbers."""
