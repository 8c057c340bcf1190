"""Loaded by schemathesis (``SCHEMATHESIS_HOOKS``) in the fuzz test: how to generate bodies of
the media types it has no serializer for."""

import schemathesis
from hypothesis import strategies as st

# The resumable mechanism's append requests (IETF resumable-uploads draft).
schemathesis.openapi.media_type("application/partial-upload", st.binary(max_size=4096))
