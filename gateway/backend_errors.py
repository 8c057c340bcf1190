"""How a call to the backing index fails, in the terms every layer that talks to it shares:
the publish path and the read path, the pass-through authenticator, and the handlers that
answer such a failure as 502/503."""

from __future__ import annotations

__all__ = ["BackendError", "BackendInvalidResponse", "BackendRefused", "BackendUnavailable"]


class BackendError(Exception):
    """The backing index could not answer; the message never contains credentials."""


class BackendUnavailable(BackendError):
    """Connection error, timeout, 5xx or 429: worth retrying later, or answering 503."""


class BackendInvalidResponse(BackendUnavailable):
    """The index answered something this profile cannot read (wrong shape, too big, odd status).

    A subclass of BackendUnavailable so that callers treating the backend as down stay
    correct; it is kept apart because retrying rarely helps and an operator should look.
    """


class BackendRefused(BackendError):
    """401/403 from the index: the configured credentials were refused."""
