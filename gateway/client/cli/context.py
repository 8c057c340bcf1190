"""What every client command runs in: its options, reporter and environment, the HTTP
session (with the TLS files), the credentials, Ctrl+C, and the exit status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.client.api import ClientError
from gateway.client.cli.output import Reporter
from gateway.client.credentials import (
    CredentialError,
    RepositoryCredentials,
    fetch_oidc_token,
    resolve_credentials,
)
from gateway.client.local import LocalCheckError
from gateway.client.state import SessionRecord, StateError, StateFile, default_state_file

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# How much longer a session is asked to live (``session extend``, and before uploading).
EXTEND_BY = 3600


@dataclass
class Context:
    args: argparse.Namespace
    reporter: Reporter
    env: Mapping[str, str]
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> StateFile:
        return StateFile(self.args.state_file or default_state_file(self.env))

    def tls_files(self, record: SessionRecord | None = None) -> tuple[str | None, str | None]:
        """--cert and --client-cert: the options, the environment, else what the session
        was created with."""
        cert = self.args.cert or _env_first(self.env, "CERT")
        client_cert = self.args.client_cert or _env_first(self.env, "CLIENT_CERT")
        if record is not None:
            cert, client_cert = cert or record.cert, client_cert or record.client_cert
        return cert, client_cert

    def http(self, record: SessionRecord | None = None) -> aiohttp.ClientSession:
        cert, client_cert = self.tls_files(record)
        if cert is None and client_cert is None:
            return aiohttp.ClientSession()
        try:
            context = ssl.create_default_context(cafile=cert)
            if client_cert:
                context.load_cert_chain(client_cert)
        except (OSError, ssl.SSLError) as exc:
            raise CredentialError(f"cannot use --cert/--client-cert: {exc}") from None
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


def _env_first(env: Mapping[str, str], key: str) -> str | None:
    return env.get(f"UPLOAD_GATEWAY_{key}") or env.get(f"TWINE_{key}") or None


def run(args: argparse.Namespace, command: Callable[[Context], Awaitable[int]]) -> int:
    reporter = Reporter(quiet=args.quiet, verbose=args.verbose, json_mode=args.json)

    async def main() -> int:
        context = Context(args, reporter, dict(os.environ))
        loop = asyncio.get_running_loop()
        work = asyncio.ensure_future(command(context))

        def on_sigint() -> None:
            context.interrupted.set()
            work.cancel()
            # A second Ctrl+C during the clean-up stops at once.
            loop.remove_signal_handler(signal.SIGINT)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await work
        except asyncio.CancelledError:
            return EXIT_INTERRUPTED

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (LocalCheckError, CredentialError, StateError) as exc:
        reporter.error(str(exc))
        return EXIT_USAGE
    except ClientError as exc:
        reporter.problem("", exc)
        return EXIT_REFUSED
    except Exception as exc:  # a bug or an odd environment: say what, no traceback
        if args.verbose:
            reporter.console.print_exception()
        reporter.error(f"unexpected {type(exc).__name__}: {exc} (--verbose shows the traceback)")
        return EXIT_REFUSED


async def authenticated(
    context: Context, http: aiohttp.ClientSession, **resolve: Any
) -> RepositoryCredentials:
    args = context.args
    credentials = resolve_credentials(
        repository_url=resolve.get("repository_url", args.repository_url),
        repository=resolve.get("repository", args.repository),
        username=args.username or resolve.get("username"),
        password=args.password,
        config_file=args.config_file,
        env=context.env,
        fallback_url=resolve.get("fallback_url"),
        use_keyring=not args.no_keyring,
    )
    if credentials.oidc_pending:
        context.reporter.step("requesting a GitHub Actions OIDC token")
        credentials = credentials.with_token(
            await fetch_oidc_token(http, context.env, args.oidc_audience)
        )
    if credentials.authorization is None:
        context.reporter.warn("no credentials given; the server will probably refuse")
    else:
        who = credentials.username or "__token__"
        if credentials.token:
            context.reporter.step("authenticating with a GitHub Actions OIDC token")
        else:
            context.reporter.step(f"authenticating as {who} (secret from {credentials.source})")
    return credentials
