"""Release gates (R-W11): what must hold before a session may publish (docs/policy.md)."""
