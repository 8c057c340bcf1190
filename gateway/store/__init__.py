"""S3 persistence: JSON records with conditional writes and streamed blobs. Knows no HTTP."""
