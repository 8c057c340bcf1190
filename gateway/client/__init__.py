"""The client side of Upload 2.0: an async library (:mod:`gateway.client.api`) and the
``upload-gateway publish`` / ``session`` / ``audit`` commands (:mod:`gateway.client.cli`).

The library's public surface is what this module exports; the modules whose names start with
an underscore are its private plumbing."""

import warnings
from typing import Any

from gateway.client.api import (
    ClientError,
    FileUploadView,
    NotUpload2Error,
    OperationFailed,
    ProblemError,
    RetryPolicy,
    SessionView,
    TransportError,
    UploadClient,
    choose_mechanism,
)

__all__ = [
    "ClientError",
    "FileUploadView",
    "NotUpload2Error",
    "OperationFailed",
    "ProblemError",
    "RetryPolicy",
    "SessionView",
    "TransportError",
    "UploadClient",
    "choose_mechanism",
]

# The names the views had before they were told apart from the server's records of the same
# name (gateway.sessions.records): still importable, with a warning.
_RENAMED = {"PublishingSession": SessionView, "FileUpload": FileUploadView}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        new = _RENAMED[name]
        warnings.warn(
            f"gateway.client.{name} is now gateway.client.{new.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return new
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
