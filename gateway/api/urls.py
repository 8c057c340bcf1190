"""Absolute URLs, always built from the configured public base (R-G1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Urls:
    base: str  # e.g. https://upload.example.com (no trailing slash)
    api_root: str  # e.g. /upload/2.0/

    @property
    def root(self) -> str:
        return self.base + self.api_root

    def session(self, sid: str) -> str:
        return f"{self.root}sessions/{sid}"

    def upload(self, sid: str) -> str:
        return f"{self.session(sid)}/files"

    def publish(self, sid: str) -> str:
        return f"{self.session(sid)}/publish"

    def extend(self, sid: str) -> str:
        return f"{self.session(sid)}/extend"

    def stage(self, sid: str) -> str:
        return f"{self.base}/stage/{sid}/"

    def file(self, sid: str, fid: str) -> str:
        return f"{self.upload(sid)}/{fid}"

    def file_complete(self, sid: str, fid: str) -> str:
        return f"{self.file(sid, fid)}/complete"

    def file_extend(self, sid: str, fid: str) -> str:
        return f"{self.file(sid, fid)}/extend"

    def file_content(self, sid: str, fid: str) -> str:
        return f"{self.file(sid, fid)}/content"

    def file_attestations(self, sid: str, fid: str) -> str:
        return f"{self.file(sid, fid)}/attestations"

    def file_resumable(self, sid: str, fid: str) -> str:
        return f"{self.file(sid, fid)}/resumable"
