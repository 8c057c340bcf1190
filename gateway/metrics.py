"""Prometheus metrics (R-W5), served at ``/metrics``.

Metrics are module-level on the default registry: one process, one set, however many
applications a test creates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "upload_gateway_requests_total", "HTTP requests answered.", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "upload_gateway_request_seconds", "HTTP request latency.", ["route", "method"]
)
BYTES_RECEIVED = Counter(
    "upload_gateway_received_bytes_total", "Request body bytes received.", ["route"]
)
BYTES_SENT = Counter("upload_gateway_sent_bytes_total", "Response body bytes sent.", ["route"])
SESSIONS = Gauge(
    "upload_gateway_sessions", "Publishing sessions by state, as of the last sweep.", ["state"]
)
READY = Gauge("upload_gateway_ready", "1 when this replica's last readiness check passed, else 0.")
UPLOADS_IN_FLIGHT = Gauge(
    "upload_gateway_uploads_in_flight", "Mechanism requests receiving bytes right now."
)
PUBLISH_SECONDS = Histogram(
    "upload_gateway_publish_seconds",
    "Time from publish request (or resume) to published/error.",
    ["backend", "outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
S3_SECONDS = Histogram("upload_gateway_s3_seconds", "S3 call latency.", ["operation"])
S3_ERRORS = Counter("upload_gateway_s3_errors_total", "S3 calls that failed.", ["operation"])
BACKEND_SECONDS = Histogram(
    "upload_gateway_backend_seconds", "Backing index call latency.", ["backend", "operation"]
)
BACKEND_ERRORS = Counter(
    "upload_gateway_backend_errors_total",
    "Backing index calls that failed.",
    ["backend", "operation"],
)


@contextmanager
def _timed(seconds: Histogram, errors: Counter, *labels: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        errors.labels(*labels).inc()
        raise
    finally:
        seconds.labels(*labels).observe(time.perf_counter() - started)


def backend_call(backend: str, operation: str) -> AbstractContextManager[None]:
    return _timed(BACKEND_SECONDS, BACKEND_ERRORS, backend, operation)


def s3_call(operation: str) -> AbstractContextManager[None]:
    """Time an S3 request made outside botocore (which ``instrument_s3`` times itself)."""
    return _timed(S3_SECONDS, S3_ERRORS, operation)


def instrument_s3(client: Any) -> None:
    """Time every S3 call through botocore's event hooks."""
    events = client.meta.events

    def before(context: dict[str, Any], model: Any, **_: Any) -> None:
        # after-call-error is emitted without the operation model: remember its name here.
        context["metrics_operation"] = model.name
        context["metrics_started"] = time.perf_counter()

    def after(context: dict[str, Any], **_: Any) -> None:
        started = context.pop("metrics_started", None)
        if started is not None:
            operation = context["metrics_operation"]
            S3_SECONDS.labels(operation).observe(time.perf_counter() - started)

    def failed(context: dict[str, Any], **_: Any) -> None:
        after(context)
        S3_ERRORS.labels(context.get("metrics_operation", "unknown")).inc()

    events.register("before-call.s3", before)
    events.register("after-call.s3", after)
    events.register("after-call-error.s3", failed)
