"""The client side of Upload 2.0: an async library (:mod:`gateway.client.api`) and the
``upload-gateway publish`` / ``upload-gateway session`` commands (:mod:`gateway.client.cli`)."""

from gateway.client.api import (
    ClientError,
    FileUpload,
    NotUpload2Error,
    OperationFailed,
    ProblemError,
    PublishingSession,
    TransportError,
    UploadClient,
)

__all__ = [
    "ClientError",
    "FileUpload",
    "NotUpload2Error",
    "OperationFailed",
    "ProblemError",
    "PublishingSession",
    "TransportError",
    "UploadClient",
]
