"""Authentication (401 + challenges) and per-request project authorization (403)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.context import services
from gateway.auth.chain import challenges
from gateway.auth.principals import InvalidCredentials, Principal, may_upload
from gateway.protocol.audit import AUTHENTICATION_REFUSED, PERMISSION_REFUSED, AuditPrincipal
from gateway.protocol.problems import ErrorItem, Problem
from gateway.services.audit import REQUEST, refused


async def authenticate(request: web.Request) -> Principal:
    authenticators = services(request).authenticators
    try:
        for authenticator in authenticators:
            principal = await authenticator.authenticate(request)
            if principal is not None:
                identified(principal)
                return principal
        if "Authorization" in request.headers:
            raise InvalidCredentials
        detail = "Authentication is required."
    except InvalidCredentials:
        detail = "The credentials are not valid."
        refused(AUTHENTICATION_REFUSED, None, detail)  # anonymous requests are not journaled
    raise Problem(
        401,
        "unauthenticated",
        detail,
        [ErrorItem("Authorization", detail)],
        headers={"WWW-Authenticate": challenges(authenticators)},
    )


def authorize(principal: Principal, project: str) -> None:
    if not may_upload(principal, project):
        refused(PERMISSION_REFUSED, project, f"{principal.display_name} may not upload")
        raise Problem(
            403,
            "forbidden",
            f"{principal.display_name} may not upload to {project}.",
            [ErrorItem("project", project)],
        )


def audit_principal(principal: Principal) -> AuditPrincipal:
    kind = principal.id.partition(":")[0]
    claims = dict(principal.claims)
    return AuditPrincipal(
        id=principal.id,
        name=principal.display_name,
        kind=kind,
        issuer=claims.pop("iss", None),
        claims=claims,
    )


def identified(principal: Principal) -> None:
    """The request's caller is now known (called by authentication)."""
    facts = REQUEST.get()
    if facts is not None:
        facts.principal = audit_principal(principal)
