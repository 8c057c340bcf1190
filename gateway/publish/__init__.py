"""Publishing to the backing index: backend profiles, the legacy upload form, the worker."""
