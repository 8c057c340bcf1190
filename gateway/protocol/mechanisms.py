"""The file upload mechanisms' identifiers (PEP 694): what a session offers and a file upload
session names. Server and client both speak them, so they live with the protocol."""

from typing import Final, Literal, get_args

# Server-specific mechanisms (PEP 694: vnd-<operator>-<implementation>), documented in docs/api.md.
Mechanism = Literal[
    "http-post-bytes", "vnd-uploadgateway-resumable-v1", "vnd-uploadgateway-s3-presigned-v1"
]
HTTP_POST_BYTES: Final = "http-post-bytes"
RESUMABLE: Final = "vnd-uploadgateway-resumable-v1"
S3_PRESIGNED: Final = "vnd-uploadgateway-s3-presigned-v1"

KNOWN: tuple[Mechanism, ...] = get_args(Mechanism)
