"""``upload-gateway``: serve, run a local development stack, hash a secret, publish."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upload-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, help="TOML configuration file")

    dev = commands.add_parser(
        "dev", help="run SeaweedFS + pypiserver + the gateway locally, wired together"
    )
    dev.add_argument("--state-dir", type=Path, default=Path(".dev"))
    dev.add_argument("--port", type=int, default=8080, help="the gateway's port")

    hashing = commands.add_parser(
        "hash-password", help="print the hash of a password or token for the configuration"
    )
    hashing.add_argument("--stdin", action="store_true", help="read the secret from stdin")

    index = commands.add_parser("index", help="operator commands about the backing index")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    backfill = index_commands.add_parser(
        "backfill", help="learn every file's facts for the read path ahead of a cut-over"
    )
    backfill.add_argument("--config", type=Path, help="TOML configuration file")
    backfill.add_argument(
        "--project", action="append", default=[], help="only this project (repeatable)"
    )

    from gateway.client.cli import register

    register(commands)  # publish, session: the Upload 2.0 client

    args = parser.parse_args(argv)
    if getattr(args, "client_main", None) is not None:
        return int(args.client_main(args))
    # The server's modules (settings, and through them the S3 client) are imported for its
    # commands only: without them the client starts in half the time (docs/figures.md).
    from gateway.settings import ConfigurationError

    try:
        return _server_command(args)
    except ConfigurationError as exc:
        print(f"upload-gateway: {exc}", file=sys.stderr)
        return 2


def _server_command(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args.config)
    if args.command == "dev":
        from gateway.dev import run_dev_stack

        return run_dev_stack(args.state_dir, args.port)
    if args.command == "index":
        from gateway.backfill import run_backfill
        from gateway.settings import load_settings

        return run_backfill(load_settings(args.config), args.project)
    if args.command == "hash-password":
        return _hash_password(args.stdin)
    return 1


def _serve(config: Path | None) -> int:
    from gateway.serve import run
    from gateway.settings import load_settings

    run(load_settings(config))
    return 0


def _hash_password(from_stdin: bool) -> int:
    from gateway.hashed_secrets import hash_secret

    secret = sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass("secret: ")
    if not secret:
        print("upload-gateway: empty secret", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


if __name__ == "__main__":
    sys.exit(main())
