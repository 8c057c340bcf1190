"""The one route table of the gateway's own HTTP surface (issue #16).

The aiohttp routes (``app.py`` binds a handler to each name), the URL builder
(``api/urls.py``) and the OpenAPI paths (``protocol/openapi.py``) are all derived from it, as
in starlette's routing: a route knows its path and builds its URLs. Adding a route is one line
here, its handler in ``app.py``'s binding and, when documented, its operation in the OpenAPI
facts. The legacy endpoint and the read proxy are not here: their paths are configuration,
and their contract is the legacy protocol's, not Upload 2.0's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    name: str  # the aiohttp route name, also the ``route`` label of metrics and logs
    method: str
    template: str  # under the API root when ``under_api``, else from the site's root
    operation_id: str  # in the OpenAPI document
    under_api: bool = True

    def path(self, api_root: str) -> str:
        """The path template, e.g. ``/upload/2.0/sessions/{sid}``."""
        return api_root + self.template if self.under_api else self.template

    def url(self, base: str, api_root: str, **parameters: str) -> str:
        """The absolute URL with ``parameters`` filled in (R-G1: always from the public base)."""
        return base + self.path(api_root).format(**parameters)

    @property
    def parameters(self) -> list[str]:
        return _PARAMETER.findall(self.template)


def _api(name: str, method: str, template: str, operation_id: str) -> Route:
    return Route(name, method, template, operation_id)


def _site(name: str, method: str, template: str, operation_id: str) -> Route:
    return Route(name, method, template, operation_id, under_api=False)


_SESSION = "sessions/{sid}"
_FILE = f"{_SESSION}/files/{{fid}}"

# In matching order: aiohttp tries routes in the order they were added.
ROUTES: tuple[Route, ...] = (
    _api("api:create-session", "POST", "", "createSession"),
    _api("api:session", "GET", _SESSION, "getSession"),
    _api("api:cancel-session", "DELETE", _SESSION, "cancelSession"),
    _api("api:extend-session", "POST", f"{_SESSION}/extend", "extendSession"),
    _api("api:publish", "POST", f"{_SESSION}/publish", "publishSession"),
    _api("api:approve", "POST", f"{_SESSION}/approve", "approveSession"),
    _api("api:release-session", "GET", "releases/{project}/{version}", "getReleaseSession"),
    _api("api:create-file", "POST", f"{_SESSION}/files", "createFile"),
    _api("api:file", "GET", _FILE, "getFile"),
    _api("api:delete-file", "DELETE", _FILE, "deleteFile"),
    _api("api:complete-file", "POST", f"{_FILE}/complete", "completeFile"),
    _api("api:extend-file", "POST", f"{_FILE}/extend", "extendFile"),
    _api("mech:http-post-bytes", "POST", f"{_FILE}/content", "sendBytes"),
    _api("mech:attestations", "POST", f"{_FILE}/attestations", "attachAttestations"),
    _api("mech:offset", "HEAD", f"{_FILE}/resumable", "resumableOffset"),
    _api("mech:append", "PATCH", f"{_FILE}/resumable", "resumableAppend"),
    _site("stage:root", "GET", "/stage/{token}/", "stageRoot"),
    _site("stage:file", "GET", "/stage/{token}/+files/{filename}", "stageFile"),
    _site("stage:preview", "GET", "/stage/{token}/+preview/", "stagePreview"),
    _site("stage:project", "GET", "/stage/{token}/{project}/", "stageProject"),
    _site(
        "integrity:provenance",
        "GET",
        "/integrity/{project}/{version}/{filename}/provenance",
        "getProvenance",
    ),
    _site("healthz", "GET", "/healthz", "healthz"),
    _site("readyz", "GET", "/readyz", "readyz"),
    _site("metrics", "GET", "/metrics", "metrics"),
    _api("openapi", "GET", "openapi.json", "openapi"),
    _api("audit:journal", "GET", "audit", "readAudit"),
    _api("yank:yank", "PUT", "yanks/{project}/{version}", "yankRelease"),
    _api("yank:unyank", "DELETE", "yanks/{project}/{version}", "unyankRelease"),
)

BY_NAME: dict[str, Route] = {route.name: route for route in ROUTES}
