"""Backend profiles: what the backing index already holds for a project, with sha256.

``backend_for(settings, http)`` picks the profile for ``settings.kind``; importing this
package registers every kind.
"""

from gateway.publish.backends.base import (
    Backend,
    BackendError,
    BackendInvalidResponse,
    BackendRefused,
    BackendUnavailable,
    Listing,
    backend_for,
)
from gateway.publish.backends.devpi import DevpiBackend
from gateway.publish.backends.pypiserver import PypiserverBackend
from gateway.publish.backends.warehouse import WarehouseBackend

__all__ = [
    "Backend",
    "BackendError",
    "BackendInvalidResponse",
    "BackendRefused",
    "BackendUnavailable",
    "DevpiBackend",
    "Listing",
    "PypiserverBackend",
    "WarehouseBackend",
    "backend_for",
]
