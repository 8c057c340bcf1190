"""Staged previews: each session's completed files as a simple repository (PEP 503/691)."""
