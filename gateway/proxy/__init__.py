"""The backing index as the gateway reads it for the read path (R-W10): its pages fetched and
parsed, the files they list learned, the simple API answered from them. The handlers that
pass the rest of the index's traffic through (R-W4) are in ``gateway.api``."""
