"""``upload-gateway yank NAME==VERSION [--reason TEXT]`` and ``unyank NAME==VERSION``: PEP 592
for any index, through the gateway's ``{api root}yanks/{project}/{version}`` (docs/reads.md).

"""

from __future__ import annotations

import argparse
import json
from urllib.parse import quote

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from gateway.client.cli.context import Context, authenticated, run
from gateway.protocol.yanks import MAX_REASON, YankRequest, YankState

_OK, _REFUSED = 0, 1


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    for name, yanked in (("yank", True), ("unyank", False)):
        text = (
            "yank a release: installers skip it unless it is pinned with == (PEP 592)"
            if yanked
            else "unyank a release yanked through the gateway"
        )
        parser = commands.add_parser(name, parents=[common], help=text, description=text)
        parser.add_argument("release", metavar="NAME==VERSION", type=release_argument)
        if yanked:
            parser.add_argument("--reason", help="why; installers show it", default=None)

        def entry(args: argparse.Namespace, yanked: bool = yanked) -> int:
            return run(args, lambda context: _command(context, yanked))

        parser.set_defaults(client_main=entry)


def release_argument(text: str) -> tuple[str, str]:
    name, separator, version = text.partition("==")
    try:
        if not separator:
            raise ValueError
        Version(version)
        return canonicalize_name(name, validate=True), version
    except (InvalidName, InvalidVersion, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME==VERSION") from None


async def _command(context: Context, yanked: bool) -> int:
    args = context.args
    name, version = args.release
    reason = getattr(args, "reason", None)
    if reason is not None and len(reason) > MAX_REASON:
        context.reporter.error(f"--reason is at most {MAX_REASON} characters")
        return _REFUSED
    async with context.http() as http:
        credentials = await authenticated(context, http)
        url = f"{credentials.repository_url.rstrip('/')}/yanks/{quote(name)}/{quote(version)}"
        headers = {"Accept": "application/json"}
        if credentials.authorization:
            headers["Authorization"] = credentials.authorization
        body = YankRequest(reason=reason).model_dump_json() if yanked else None
        if body is not None:
            headers["Content-Type"] = "application/json"
        method = "PUT" if yanked else "DELETE"
        async with http.request(method, url, data=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                context.reporter.error(_problem_text(response.status, answer))
                return _REFUSED
    state = YankState.model_validate_json(answer)
    verb = "yanked" if state.yanked else "unyanked"
    because = f" ({state.reason})" if state.reason else ""
    context.reporter.result(
        state.model_dump(mode="json"), [f"{verb} {state.project} {state.version}{because}"]
    )
    return _OK


def _problem_text(status: int, body: bytes) -> str:
    try:
        problem = json.loads(body)
        detail = problem.get("detail") or problem.get("title")
    except (ValueError, AttributeError):
        detail = None
    return f"{status}: {detail or body[:200].decode(errors='replace')}"
