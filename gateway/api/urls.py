"""Absolute URLs, always built from the configured public base (R-G1), by the route table."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.protocol.routes import BY_NAME


@dataclass(frozen=True)
class Urls:
    base: str  # e.g. https://upload.example.com (no trailing slash)
    api_root: str  # e.g. /upload/2.0/

    @property
    def root(self) -> str:
        return self.base + self.api_root

    def of(self, route: str, **parameters: str) -> str:
        """The URL of the named route (see ``protocol/routes.py``)."""
        return BY_NAME[route].url(self.base, self.api_root, **parameters)

    def session(self, sid: str) -> str:
        return self.of("api:session", sid=sid)

    def upload(self, sid: str) -> str:
        return self.of("api:create-file", sid=sid)

    def publish(self, sid: str) -> str:
        return self.of("api:publish", sid=sid)

    def extend(self, sid: str) -> str:
        return self.of("api:extend-session", sid=sid)

    def stage(self, sid: str) -> str:
        return self.of("stage:root", token=sid)

    def file(self, sid: str, fid: str) -> str:
        return self.of("api:file", sid=sid, fid=fid)

    def file_complete(self, sid: str, fid: str) -> str:
        return self.of("api:complete-file", sid=sid, fid=fid)

    def file_extend(self, sid: str, fid: str) -> str:
        return self.of("api:extend-file", sid=sid, fid=fid)

    def file_content(self, sid: str, fid: str) -> str:
        return self.of("mech:http-post-bytes", sid=sid, fid=fid)

    def file_attestations(self, sid: str, fid: str) -> str:
        return self.of("mech:attestations", sid=sid, fid=fid)

    def file_resumable(self, sid: str, fid: str) -> str:
        return self.of("mech:append", sid=sid, fid=fid)
