"""File upload mechanisms: how bytes get from a client into the stage, one module each.

The identifiers are the protocol's (:mod:`gateway.protocol.mechanisms`); they are named here
too so that the server's modules keep one place to import a mechanism from."""

from gateway.protocol.mechanisms import HTTP_POST_BYTES, KNOWN, RESUMABLE, S3_PRESIGNED, Mechanism

__all__ = ["HTTP_POST_BYTES", "KNOWN", "RESUMABLE", "S3_PRESIGNED", "Mechanism"]
