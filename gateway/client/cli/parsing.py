"""The client commands' arguments: ``publish``, ``session ACTION``, ``audit`` and ``yank``, with the
options they share (repository and credentials like twine, TLS, output)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.client.cli.audit_command import audit_command
from gateway.client.cli.context import EXTEND_BY, run
from gateway.client.cli.publish import publish_command
from gateway.client.cli.session_commands import session_command
from gateway.client.cli.yank_commands import register as register_yank
from gateway.client.credentials import DEFAULT_OIDC_AUDIENCE


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _add_credential_options(common)
    _add_tls_and_output_options(common)
    return common


def _add_credential_options(common: argparse.ArgumentParser) -> None:
    repo = common.add_argument_group("repository and credentials (like twine)")
    repo.add_argument(
        "--repository-url",
        metavar="URL",
        help="the Upload 2.0 API root (or a legacy upload URL); "
        "default: $UPLOAD_GATEWAY_REPOSITORY_URL, $TWINE_REPOSITORY_URL",
    )
    repo.add_argument("-r", "--repository", metavar="NAME", help="a section of the .pypirc file")
    repo.add_argument(
        "--config-file", type=Path, metavar="PYPIRC", help="the .pypirc file (~/.pypirc)"
    )
    repo.add_argument("-u", "--username", help="default: $UPLOAD_GATEWAY_USERNAME, $TWINE_USERNAME")
    repo.add_argument(
        "-p",
        "--password",
        help="password or API token; default: $UPLOAD_GATEWAY_PASSWORD, $TWINE_PASSWORD",
    )
    repo.add_argument(
        "--no-keyring",
        action="store_true",
        help="do not look passwords up in the system keyring (also: UPLOAD_GATEWAY_KEYRING=0)",
    )
    repo.add_argument(
        "--oidc-audience",
        default=DEFAULT_OIDC_AUDIENCE,
        help="audience of the GitHub Actions OIDC token used when no password is given "
        f"(default {DEFAULT_OIDC_AUDIENCE!r})",
    )


def _add_tls_and_output_options(common: argparse.ArgumentParser) -> None:
    network = common.add_argument_group("TLS (like twine)")
    network.add_argument(
        "--cert",
        metavar="PATH",
        help="CA bundle to verify the server with; default: $UPLOAD_GATEWAY_CERT, $TWINE_CERT, "
        "else the system store",
    )
    network.add_argument(
        "--client-cert",
        metavar="PATH",
        help="PEM file with a client certificate and its key (mutual TLS); default: "
        "$UPLOAD_GATEWAY_CLIENT_CERT, $TWINE_CLIENT_CERT",
    )
    common.add_argument(
        "--state-file",
        type=Path,
        help="where local session ids are kept "
        "(default $UPLOAD_GATEWAY_STATE_FILE or $XDG_STATE_HOME/upload-gateway/sessions.json)",
    )
    out = common.add_argument_group("output")
    loudness = out.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    loudness.add_argument("-v", "--verbose", action="store_true", help="every step")
    out.add_argument(
        "--json", action="store_true", help="print one JSON object per session on stdout"
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``publish`` and ``session`` to the ``upload-gateway`` subcommands."""
    common = _common_options()
    _add_publish(commands, common)
    _add_session(commands, common)


def _add_publish(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    publish = commands.add_parser(
        "publish",
        parents=[common],
        help="upload distributions with Upload 2.0 (PEP 694) and publish or stage them",
        description="Upload wheels and sdists: one publishing session per project version, "
        "files uploaded in parallel, then published (or only staged with --stage).",
    )
    publish.add_argument("files", nargs="+", metavar="FILE", help="wheels and .tar.gz sdists")
    publish.add_argument(
        "--stage",
        action="store_true",
        help="upload but do not publish; print the stage URL and a session id",
    )
    publish.add_argument(
        "--skip-existing",
        action="store_true",
        help="a file the index already has (or that this session already completed with the "
        "same bytes) is reported as skipped, not as an error, as twine does",
    )
    publish.add_argument(
        "--parallel", type=_positive, default=4, metavar="N", help="files uploaded at once (4)"
    )
    publish.add_argument(
        "--attestations",
        action="store_const",
        const=True,
        default="found",
        help="require PEP 740 attestations next to each file ({file}.*.attestation); "
        "by default those found there are sent",
    )
    publish.add_argument(
        "--no-attestations",
        action="store_const",
        const=False,
        dest="attestations",
        help="do not send the attestations found next to the files",
    )
    publish.add_argument(
        "--protocol",
        choices=("auto", "2", "legacy"),
        default="auto",
        help="auto: Upload 2.0, else the legacy API (default); 2: never fall back; "
        "legacy: only the legacy API",
    )
    publish.set_defaults(client_main=lambda args: run(args, publish_command))


def _add_session(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    session = commands.add_parser(
        "session",
        help="status, publish, cancel or extend a session staged with 'publish --stage'",
    )
    actions = session.add_subparsers(dest="session_command", required=True, metavar="ACTION")
    for name, text in (
        ("status", "show a session's status and files"),
        ("publish", "publish a staged session"),
        ("cancel", "cancel a session and discard its files"),
        ("extend", "ask the server to keep a session longer"),
        ("approve", "approve a release's current files (release gates, docs/policy.md)"),
    ):
        action = actions.add_parser(name, parents=[common], help=text, description=text)
        action.add_argument(
            "id",
            metavar="ID",
            help="the local session id, a session URL, or NAME==VERSION (the release's "
            "session, e.g. one staged legacy uploads created; needs --repository-url)",
        )
        if name == "extend":
            action.add_argument(
                "--seconds", type=_positive, default=EXTEND_BY, help="how much longer (3600)"
            )
        action.set_defaults(client_main=lambda args: run(args, session_command))
    listing = actions.add_parser("list", parents=[common], help="the sessions this machine knows")
    listing.set_defaults(client_main=lambda args: run(args, session_command))
    _register_audit(commands, common)
    register_yank(commands, common)


def _register_audit(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="who published what, when and from where (needs the audit permission)",
        description="The gateway's audit journal, newest first: releases, session changes, "
        "refusals. --json prints one event per line.",
    )
    audit.add_argument("--project", help="only this project's events")
    audit.add_argument("--since", metavar="DATE", help="from this date (2026-11-01) or time on")
    audit.add_argument(
        "--limit", type=_positive, default=100, metavar="N", help="at most N events (100)"
    )
    audit.set_defaults(client_main=lambda args: run(args, audit_command))


def main(argv: list[str] | None = None) -> int:
    """Run the client commands on their own (``python -m gateway.client.cli``)."""
    parser = argparse.ArgumentParser(prog="upload-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands)
    args = parser.parse_args(argv)
    return int(args.client_main(args))
