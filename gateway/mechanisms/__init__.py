"""File upload mechanisms: how bytes get from a client into the stage, one module each."""

HTTP_POST_BYTES = "http-post-bytes"
