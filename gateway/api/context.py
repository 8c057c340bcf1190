"""What handlers reach through the application: typed keys, one per collaborator."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.api.urls import Urls
from gateway.auth.principals import Authenticator
from gateway.gates.approvals import Approvals
from gateway.gates.provenance import ProvenanceStore
from gateway.gates.service import AttestationGate
from gateway.gates.status import GateStatus
from gateway.proxy.simple_api import ReadPath
from gateway.publish.preview import PreviewService
from gateway.publish.publisher import Publisher
from gateway.publish.worker import PublishWorker
from gateway.services.audit import AuditTrail
from gateway.services.file_facts import FileFactsService
from gateway.services.files import FileService
from gateway.services.legacy_staging import LegacyStaging
from gateway.services.names import NameRegistry
from gateway.services.resumable import ResumableUploads
from gateway.services.session_files import SessionFiles
from gateway.services.session_status import SessionStatus
from gateway.services.sessions import SessionService
from gateway.services.stage import StageService
from gateway.services.sweeper import Sweeper
from gateway.services.yanks import YankService
from gateway.settings import Settings


@dataclass
class Services:
    settings: Settings
    urls: Urls
    authenticators: list[Authenticator]
    sessions: SessionService
    status: SessionStatus  # the status GET's one listing
    session_files: SessionFiles
    files: FileService
    resumable: ResumableUploads
    publisher: Publisher
    publish_worker: PublishWorker  # the publishes running in the background (its tasks)
    stage: StageService
    preview: PreviewService
    names: NameRegistry
    sweeper: Sweeper
    mechanisms: list[str]
    legacy_staging: LegacyStaging
    audit: AuditTrail
    gates: AttestationGate
    provenance: ProvenanceStore
    approvals: Approvals
    gate_status: GateStatus
    yanks: YankService  # PEP 592 for any index (R-W10)
    reads: ReadPath | None  # the read path's simple API; None when read_proxy is off
    # Facts records: written by pass-through legacy uploads whether or not read_proxy is on.
    file_facts: FileFactsService


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
