"""The Upload 2.0 client library's error handling, retries and polling, against small real
aiohttp servers that answer the way a server under stress or a legacy index would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from gateway.client._transport import Answer, retry_after
from gateway.client.api import (
    ClientError,
    NotUpload2Error,
    OperationFailed,
    ProblemError,
    RetryPolicy,
    SessionView,
    TransportError,
    UploadClient,
)
from gateway.devstack import free_port
from gateway.protocol.media import UPLOAD_V2_JSON

FAST = RetryPolicy(retries=3, backoff=0.01)


def answer(status: int, media: str, body: bytes, reason: str = "") -> Answer:
    return Answer(status, reason, media, body, {}, "http://x/")


def test_problem_documents_are_parsed() -> None:
    problem = ProblemError.from_answer(
        answer(
            409,
            "application/problem+json",
            b'{"type": "urn:x:already-published", "status": 409, "title": "Conflict",'
            b' "detail": "foo.whl is published", "errors": [{"source": "filename",'
            b' "message": "exists"}]}',
        )
    )
    assert (problem.status, problem.title, problem.detail) == (
        409,
        "Conflict",
        "foo.whl is published",
    )
    assert problem.errors == [{"source": "filename", "message": "exists"}]
    assert problem.type == "urn:x:already-published"
    # The PEP's own example says "details".
    assert (
        ProblemError.from_answer(
            answer(400, "application/problem+json", b'{"title": "Bad", "details": "d"}')
        ).detail
        == "d"
    )
    html = ProblemError.from_answer(
        answer(
            403, "text/html", b"<html><body><h1>Forbidden</h1>\n nope </body></html>", "Forbidden"
        )
    )
    assert (html.status, html.title, html.detail) == (403, "Forbidden", "Forbidden nope")


def test_responses_are_read_with_the_protocol_models() -> None:
    """Keys the PEP lets a server omit may be missing; a document that is not a session is a
    clear error, not a KeyError later."""
    minimal = session_body()
    del minimal["links"]["extend"], minimal["notices"]
    session = SessionView.parse(minimal)
    assert (session.url, session.stage, session.token, session.notices) == ("/s", None, None, [])
    assert "extend" not in session.links
    full = session_body()
    full["links"]["stage"] = "/stage/t"
    full["session-token"] = "t"
    full["files"] = {"a.whl": {"status": "pending", "link": "/f"}}
    session = SessionView.parse(full)
    assert (session.stage, session.token) == ("/stage/t", "t")
    assert session.files == {"a.whl": {"status": "pending", "link": "/f", "notices": []}}
    with pytest.raises(ClientError, match="status"):
        SessionView.parse({**full, "status": "lost"}, "http://x/")


def testretry_after() -> None:
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({}) is None
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"Retry-After": "soon"}) is None


def v2(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.json_response(body, status=status, content_type=UPLOAD_V2_JSON, headers=headers)


def session_body(status: str = "open") -> dict[str, Any]:
    return {
        "links": {"session": "/s", "publish": "/s/publish", "upload": "/s/files", "extend": "/e"},
        "mechanisms": ["http-post-bytes"],
        "expires-at": "2030-08-01T12:00:00Z",
        "status": status,
        "files": {},
        "notices": ["boom"] if status == "error" else [],
    }


async def serve(aiohttp_server, routes: list[tuple[str, str, Any]]):  # type: ignore[no-untyped-def]
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return await aiohttp_server(app)


async def test_5xx_and_connection_errors_are_retried_4xx_never(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    calls = {"create": 0, "bad": 0}

    async def create(request: web.Request) -> web.Response:
        calls["create"] += 1
        assert request.headers["Content-Type"] == UPLOAD_V2_JSON
        assert (await request.json())["meta"] == {"api-version": "2.0"}
        if calls["create"] < 3:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return v2(201, session_body())

    async def bad(request: web.Request) -> web.Response:
        calls["bad"] += 1
        return web.json_response(
            {"status": 400, "title": "Bad Request", "detail": "no"},
            status=400,
            content_type="application/problem+json",
        )

    server = await serve(aiohttp_server, [("POST", "/", create), ("POST", "/bad", bad)])
    async with UploadClient(str(server.make_url("/")), retry=FAST) as client:
        session, created = await client.create_session("foo", "1.0")
        assert created
        assert session.status == "open"
        assert calls["create"] == 3
        client.api_url = str(server.make_url("/bad"))
        with pytest.raises(ProblemError, match="400 Bad Request: no"):
            await client.create_session("foo", "1.0")
        assert calls["bad"] == 1

    async with UploadClient(f"http://127.0.0.1:{free_port()}/", retry=FAST) as client:
        with pytest.raises(TransportError):
            await client.create_session("foo", "1.0")


async def session_exists(request: web.Request) -> web.Response:
    """A create answered 409, with the live session at /s."""
    return web.json_response(
        {"status": 409, "title": "Conflict", "detail": "exists"},
        status=409,
        content_type="application/problem+json",
        headers={"Location": "/s"},
    )


async def test_409_reuses_the_live_session(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def status(request: web.Request) -> web.Response:
        return v2(200, session_body())

    server = await serve(aiohttp_server, [("POST", "/", session_exists), ("GET", "/s", status)])
    async with UploadClient(str(server.make_url("/")), retry=FAST) as client:
        session, created = await client.create_session("foo", "1.0")
        assert not created
        assert session.url == "/s"
        with pytest.raises(ProblemError, match="409"):
            await client.create_session("foo", "1.0", reuse=False)


@pytest.mark.parametrize(
    ("status", "content_type"), [(404, "text/html"), (405, "text/plain"), (200, "text/html")]
)
async def test_a_server_without_upload_2_is_recognised(
    aiohttp_server, status: int, content_type: str
) -> None:  # type: ignore[no-untyped-def]
    async def legacy(request: web.Request) -> web.Response:
        return web.Response(status=status, text="<html>legacy</html>", content_type=content_type)

    server = await serve(aiohttp_server, [("POST", "/", legacy)])
    async with UploadClient(str(server.make_url("/")), retry=FAST) as client:
        with pytest.raises(NotUpload2Error):
            await client.create_session("foo", "1.0")


async def test_a_deferred_publish_is_polled_until_it_resolves(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    polls = {"n": 0}
    outcome = {"final": "published"}

    async def publish(request: web.Request) -> web.Response:
        return v2(202, session_body("processing"), Location="/s", **{"Retry-After": "0"})

    async def status(request: web.Request) -> web.Response:
        polls["n"] += 1
        state = "processing" if polls["n"] < 3 else outcome["final"]
        return v2(200, session_body(state), **{"Retry-After": "0"})

    server = await serve(aiohttp_server, [("POST", "/s/publish", publish), ("GET", "/s", status)])
    async with UploadClient(str(server.make_url("/")), retry=FAST) as client:
        body = session_body()
        body["links"] = {k: str(server.make_url(v)) for k, v in body["links"].items()}
        session = SessionView.parse(body)
        published = await client.publish(session)
        assert published.status == "published"
        assert polls["n"] == 3
        polls["n"] = 0
        outcome["final"] = "error"
        with pytest.raises(OperationFailed) as failed:
            await client.publish(session)
        assert failed.value.notices == ["boom"]


async def test_credentials_only_go_to_the_api_origin(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    seen: list[str | None] = []

    async def status(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return v2(200, session_body())

    server = await serve(aiohttp_server, [("GET", "/s", status)])
    other = await serve(aiohttp_server, [("GET", "/s", status)])
    async with UploadClient(
        str(server.make_url("/")), authorization="Basic secret", retry=FAST
    ) as client:
        await client.get_session(str(server.make_url("/s")))
        await client.get_session(str(other.make_url("/s")))
    assert seen == ["Basic secret", None]


async def test_a_5xx_page_from_a_proxy_is_an_outage_not_a_legacy_index(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    async def down(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.Response(status=502, text="<h1>Bad Gateway</h1>", content_type="text/html")

    server = await serve(aiohttp_server, [("POST", "/", down)])
    async with UploadClient(str(server.make_url("/")), retry=FAST) as client:
        with pytest.raises(ProblemError, match="502"):
            await client.create_session("foo", "1.0")
    assert calls["n"] == FAST.retries + 1


async def test_an_answer_arriving_in_pieces_is_read_whole(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    # A session of a few hundred files is ~85 KB: it arrives in several pieces, and the client
    # once parsed only the first of them ("answered invalid JSON").
    body = session_body()
    body["notices"] = [f"notice {n:06}" for n in range(20_000)]
    document = json.dumps(body).encode()

    async def status(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": UPLOAD_V2_JSON})
        await response.prepare(request)
        for start in range(0, len(document), 16_384):
            await response.write(document[start : start + 16_384])
            await asyncio.sleep(0.001)
        await response.write_eof()
        return response

    server = await serve(aiohttp_server, [("POST", "/", session_exists), ("GET", "/s", status)])
    async with UploadClient(str(server.make_url("/")), retry=FAST) as client:
        session, _ = await client.create_session("foo", "1.0")
        assert len(session.notices) == 20_000


async def test_the_validations_of_several_files_are_waited_for_on_the_session(
    aiohttp_server,
) -> None:  # type: ignore[no-untyped-def]
    """One loop polls the session until none of the files named is ``processing``; a file not
    named may stay ``processing``."""
    polls = {"n": 0}

    def entry(status: str) -> dict[str, Any]:
        return {"status": status, "link": "/f", "notices": []}

    async def status(request: web.Request) -> web.Response:
        polls["n"] += 1
        body = session_body()
        body["files"] = {
            "a.whl": entry("completed"),
            "b.whl": entry("processing" if polls["n"] < 2 else "completed"),
            "c.whl": entry("processing" if polls["n"] < 3 else "error"),
            "other.whl": entry("processing"),
        }
        return v2(200, body, **{"Retry-After": "0"})

    server = await serve(aiohttp_server, [("GET", "/s", status)])
    async with UploadClient(str(server.make_url("/")), retry=FAST, max_poll_interval=0) as client:
        body = session_body()
        body["links"] = {k: str(server.make_url(v)) for k, v in body["links"].items()}
        final = await client.wait_for_files(SessionView.parse(body), ["a.whl", "b.whl", "c.whl"])
    assert polls["n"] == 3
    assert {name: entry["status"] for name, entry in final.files.items()} == {
        "a.whl": "completed",
        "b.whl": "completed",
        "c.whl": "error",
        "other.whl": "processing",
    }
