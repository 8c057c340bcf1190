"""The client side of Upload 2.0: an async library (:mod:`gateway.client.api`) and the
``upload-gateway publish`` / ``session`` / ``audit`` commands (:mod:`gateway.client.cli`).

The library's public surface is what this module exports; the modules whose names start with
an underscore are its private plumbing."""

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
