"""A local OpenID Connect issuer for the trusted-publishing tests: its own signing keys, its
JWKS served from loopback, tokens with the claims a CI provider sends."""

from __future__ import annotations

import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://ci.example.test"
AUDIENCE = "upload-gateway-tests"


class Issuer:
    def __init__(self) -> None:
        self.keys: dict[str, Any] = {
            "k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)
        }

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid, key in self.keys.items():
            algorithm = (
                jwt.algorithms.RSAAlgorithm
                if isinstance(key, rsa.RSAPrivateKey)
                else jwt.algorithms.ECAlgorithm
            )
            entry = algorithm.to_jwk(key.public_key(), as_dict=True)
            entries.append({**entry, "kid": kid, "use": "sig"})
        return {"keys": entries}

    def token(self, kid: str = "k1", algorithm: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "repo:acme/widgets:ref:refs/tags/v1",
            "repository": "acme/widgets",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm=algorithm, headers={"kid": kid})


async def serve_jwks(aiohttp_server, issuer: Issuer) -> str:  # type: ignore[no-untyped-def]
    """Serve ``issuer``'s public keys on loopback; the JWKS URL to configure."""
    app = web.Application()

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(issuer.jwks())

    app.router.add_get("/jwks", jwks)
    server = await aiohttp_server(app)
    return str(server.make_url("/jwks"))
