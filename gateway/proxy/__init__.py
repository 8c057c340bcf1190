"""The rest of the index behind one host name: legacy uploads and read traffic (R-W4)."""
