"""Use cases over the store: what each API request means, independent of HTTP."""
