"""File upload mechanisms: how bytes get from a client into the stage, one module each."""

HTTP_POST_BYTES = "http-post-bytes"
# Server-specific mechanisms (PEP 694: vnd-<operator>-<implementation>), documented in docs/api.md.
RESUMABLE = "vnd-uploadgateway-resumable-v1"
S3_PRESIGNED = "vnd-uploadgateway-s3-presigned-v1"

KNOWN = (HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED)
