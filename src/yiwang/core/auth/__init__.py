"""Users, roles and permissions, sessions, API tokens, two-factor authentication."""
