"""File upload sessions and http-post-bytes against real SeaweedFS (R-F1..F14)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.api.context import SERVICES
from gateway.app_keys import S3_CLIENT
from gateway.domain import clock
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.services.due_index import DueIndex
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.record_store import RecordStore
from gateway.store.s3 import is_not_found
from tests import attestation_assets as assets
from tests.conftest import ALICE, BOB
from tests.distributions import build_wheel
from tests.integration.conftest import META, Api, make_api, problem

FileBody = dict[str, Any]


@pytest.fixture
async def session(api: Api, project_name: str) -> dict[str, Any]:
    return await api.create_session(project_name, "1.0")


async def s3_keys(api: Api, prefix: str) -> list[str]:
    """The keys under ``prefix`` of the gateway's, as the gateway's S3 client lists them."""
    settings: Settings = api.client.app[SERVICES].settings
    paginator = api.client.app[S3_CLIENT].get_paginator("list_objects_v2")
    start = settings.s3.prefix + prefix
    found: list[str] = []
    async for page in paginator.paginate(Bucket=settings.s3.bucket, Prefix=start):
        found += [item["Key"][len(settings.s3.prefix) :] for item in page.get("Contents", [])]
    return found


async def s3_object(api: Api, key: str) -> bytes | None:
    """The object ``key`` of the gateway's, as the gateway's S3 client reads it (None: none)."""
    settings: Settings = api.client.app[SERVICES].settings
    s3 = api.client.app[S3_CLIENT]
    try:
        response = await s3.get_object(Bucket=settings.s3.bucket, Key=settings.s3.prefix + key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


async def multipart_uploads(api: Api, settings: Settings, prefix: str) -> list[str]:
    response = await api.client.app[S3_CLIENT].list_multipart_uploads(
        Bucket=settings.s3.bucket, Prefix=settings.s3.prefix + prefix
    )
    return [upload["Key"] for upload in response.get("Uploads", [])]


async def test_create_file_upload_session(api: Api, session: dict, wheel: Path) -> None:  # R-F1
    response = await api.start_file(session, wheel.name, wheel.read_bytes())
    assert response.status == 202
    assert int(response.headers["Retry-After"]) >= 1
    body = await response.json(content_type=UPLOAD_V2_JSON)
    assert body["status"] == "pending"
    assert body["meta"] == META
    assert set(body["links"]) == {"file-upload-session", "complete", "extend"}
    assert body["mechanism"]["identifier"] == "http-post-bytes"
    assert body["mechanism"]["file_url"].startswith("https://uploads.example.test/")
    assert body["mechanism"]["attestations_url"].startswith("https://uploads.example.test/")
    assert body["expires-at"] == session["expires-at"]
    listed = (await api.status(session["links"]["session"]))["files"]
    assert listed == {
        wheel.name: {
            "status": "pending",
            "link": body["links"]["file-upload-session"],
            "notices": [],
        }
    }
    # The link is unguessable: it carries the session token and a random file id.
    assert session["session-token"] in body["links"]["file-upload-session"]


async def test_upload_wheel_and_sdist(api: Api, session: dict, wheel: Path, sdist: Path) -> None:
    for path in (wheel, sdist):
        body = await api.upload(session, path)  # R-F8, R-F10
        assert body["status"] == "completed"
        status = await api.status(body["links"]["file-upload-session"])  # R-F11
        assert status["status"] == "completed"
    files = (await api.status(session["links"]["session"]))["files"]
    assert {name: f["status"] for name, f in files.items()} == {
        wheel.name: "completed",
        sdist.name: "completed",
    }


async def test_complete_answers_location(api: Api, session: dict, wheel: Path) -> None:
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)
    await api.send_bytes(file, data)
    response = await api.complete(file)
    assert response.status == 201
    assert response.headers["Location"] == file["links"]["file-upload-session"]


@pytest.mark.parametrize(
    ("filename", "slug"),
    [
        ("notadist.txt", "invalid-filename"),
        ("foo-1.0.zip", "invalid-filename"),
        ("broken-.whl", "invalid-filename"),
        ("../evil-1.0.tar.gz", "invalid-filename"),
        ("other_project-1.0-py3-none-any.whl", "filename-mismatch"),
        ("{stem}-2.0-py3-none-any.whl", "filename-mismatch"),
        ("{stem}-2.0.tar.gz", "filename-mismatch"),
    ],
)
async def test_bad_filenames(
    api: Api, session: dict, project_name: str, filename: str, slug: str
) -> None:  # R-F2
    filename = filename.format(stem=project_name.replace("-", "_"))
    document = await problem(await api.start_file(session, filename, b"x"), 400)
    assert document["type"].endswith(slug)
    assert (await api.status(session["links"]["session"]))["files"] == {}


async def test_filename_matches_after_normalization(
    api: Api, session: dict, project_name: str, tmp_path: Path
) -> None:
    path = build_wheel(tmp_path, project_name.upper().replace("-", "."), "1.0.0")
    response = await api.start_file(session, path.name, path.read_bytes())
    assert response.status == 202, await response.text()


@pytest.mark.parametrize(
    "hashes",
    [
        {"nosuchalgo": "00"},
        {"sha256": "abc"},
        {"sha256": "z" * 64},
        {"md5": "0" * 32},
        {"md5": "0" * 32, "sha1": "0" * 40},
        {"shake_128": "00"},
        {},
        {"sha256": 5},
    ],
)
async def test_bad_hashes(api: Api, session: dict, wheel: Path, hashes: dict) -> None:  # R-F3
    await problem(await api.start_file(session, wheel.name, wheel.read_bytes(), hashes=hashes), 400)


async def test_several_hashes_are_all_verified(api: Api, session: dict, wheel: Path) -> None:
    data = wheel.read_bytes()
    hashes = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake2b": hashlib.blake2b(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "sha3_256": "0" * 64,  # wrong on purpose
    }
    file = await api.create_file(session, wheel.name, data, hashes=hashes)
    await api.send_bytes(file, data)
    document = await problem(await api.complete(file), 400)
    assert document["errors"][0]["source"] == "hashes.sha3_256"


@pytest.mark.parametrize(("size", "status"), [(0, 400), (-5, 400), ("10", 400), (1.5, 400)])
async def test_bad_sizes(api: Api, session: dict, wheel: Path, size: object, status: int) -> None:
    await problem(await api.start_file(session, wheel.name, b"x", size=size), status)


async def test_size_over_maximum_is_409(
    aiohttp_client, make_settings, project_name: str, wheel: Path
) -> None:  # type: ignore[no-untyped-def]  # R-F4
    settings = make_settings(uploads={"max_file_size": 100})
    api = await make_api(aiohttp_client, settings)
    session = await api.create_session(project_name)
    document = await problem(await api.start_file(session, wheel.name, b"x" * 101), 409)
    assert document["errors"][0]["source"] == "size"


async def test_unknown_mechanism_is_422(api: Api, session: dict, wheel: Path) -> None:  # R-F6
    response = await api.start_file(session, wheel.name, b"x", mechanism="vnd-nobody-postal")
    await problem(response, 422)


async def test_same_filename_pending_conflicts(api: Api, session: dict, wheel: Path) -> None:
    await api.create_file(session, wheel.name, wheel.read_bytes())  # R-F7
    await problem(await api.start_file(session, wheel.name, wheel.read_bytes()), 409)


async def test_concurrent_creates_of_one_filename(api: Api, session: dict, wheel: Path) -> None:
    responses = await asyncio.gather(
        *(api.start_file(session, wheel.name, wheel.read_bytes()) for _ in range(6))
    )
    assert sorted(r.status for r in responses) == [202] + [409] * 5
    assert len((await api.status(session["links"]["session"]))["files"]) == 1


async def test_completed_file_is_replaced(api: Api, session: dict, wheel: Path) -> None:
    first = await api.upload(session, wheel)  # R-F7: completed → a new upload replaces it
    second = await api.create_file(session, wheel.name, wheel.read_bytes())
    assert second["links"]["file-upload-session"] != first["links"]["file-upload-session"]
    assert (await api.status(first["links"]["file-upload-session"]))["status"] == "canceled"
    files = (await api.status(session["links"]["session"]))["files"]
    assert files[wheel.name]["status"] == "pending"
    assert files[wheel.name]["link"] == second["links"]["file-upload-session"]


async def test_body_over_declared_size_is_413_and_nothing_is_lost(
    api: Api, settings: Settings, session: dict, wheel: Path
) -> None:  # R-F8
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)
    await problem(await api.send_bytes(file, data + b"extra"), 413)

    async def chunks():  # no Content-Length: the limit must hold while streaming
        yield data
        yield b"more"

    response = await api.client.post(
        api.path(file["mechanism"]["file_url"]),
        data=chunks(),
        headers=api.headers(**{"Content-Type": "application/octet-stream"}),
    )
    await problem(response, 413)
    assert (await api.status(file["links"]["file-upload-session"]))["status"] == "pending"
    sid = session["session-token"]
    assert await multipart_uploads(api, settings, keys.session_data(sid)) == []
    assert (await api.send_bytes(file, data)).status == 200
    assert (await api.complete(file)).status == 201


async def test_shorter_content_length_is_refused(api: Api, session: dict, wheel: Path) -> None:
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)
    await problem(await api.send_bytes(file, data[:-1]), 400)


async def test_short_body_without_length_fails_at_completion(
    api: Api, session: dict, wheel: Path
) -> None:
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)

    async def chunks():
        yield data[:-10]

    response = await api.client.post(
        api.path(file["mechanism"]["file_url"]),
        data=chunks(),
        headers=api.headers(**{"Content-Type": "application/octet-stream"}),
    )
    assert response.status == 200
    document = await problem(await api.complete(file), 400)
    assert document["type"].endswith("size-mismatch")
    status = await api.status(file["links"]["file-upload-session"])
    assert status["status"] == "error"
    assert status["notices"] == [document["detail"]]


async def test_repeated_post_replaces_bytes(api: Api, session: dict, wheel: Path) -> None:  # R-F8
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)
    garbage = bytes(reversed(data))
    assert (await api.send_bytes(file, garbage)).status == 200
    assert (await api.send_bytes(file, data)).status == 200
    assert (await api.complete(file)).status == 201
    fid = file["links"]["file-upload-session"].rsplit("/", 1)[1]
    objects = await s3_keys(api, keys.file_data(session["session-token"], fid))
    assert len([k for k in objects if k.endswith(".data")]) == 1


async def test_racing_posts_leave_one_consistent_object(
    api: Api, session: dict, wheel: Path
) -> None:
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)
    responses = await asyncio.gather(*(api.send_bytes(file, data) for _ in range(4)))
    assert {r.status for r in responses} <= {200, 409}
    assert 200 in {r.status for r in responses}
    assert (await api.complete(file)).status == 201
    fid = file["links"]["file-upload-session"].rsplit("/", 1)[1]
    objects = await s3_keys(api, keys.file_data(session["session-token"], fid))
    assert len([k for k in objects if k.endswith(".data")]) == 1


async def test_wrong_content_type_for_bytes(api: Api, session: dict, wheel: Path) -> None:
    file = await api.create_file(session, wheel.name, wheel.read_bytes())
    await problem(await api.send_bytes(file, wheel.read_bytes(), "application/zip"), 415)


def _wheel_with_metadata(
    name: str, metadata: bytes, extra: dict[str, bytes] | None = None
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}-1.0.dist-info/METADATA", metadata)
        for member, content in (extra or {}).items():
            archive.writestr(member, content)
    return buffer.getvalue()


def _bad_wheels(project: str) -> dict[str, tuple[bytes, str]]:
    stem = project.replace("-", "_")
    good_meta = f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0\n\n".encode()
    return {
        "not a zip": (b"this is not a zip archive at all", "content"),
        "no METADATA": (
            _wheel_with_metadata(stem, good_meta).replace(b"METADATA", b"METAFILE"),
            "content",
        ),
        "other project": (
            _wheel_with_metadata(stem, b"Metadata-Version: 2.1\nName: other\nVersion: 1.0\n\n"),
            "metadata.name",
        ),
        "other version": (
            _wheel_with_metadata(
                stem, f"Metadata-Version: 2.1\nName: {project}\nVersion: 9\n\n".encode()
            ),
            "metadata.version",
        ),
        "invalid metadata": (_wheel_with_metadata(stem, b"Metadata-Version: 9.9\n\n"), "METADATA"),
        "path traversal": (_wheel_with_metadata(stem, good_meta, {"../evil.py": b"x"}), "content"),
        "metadata too large": (
            _wheel_with_metadata(stem, good_meta + b"x" * (2 << 20)),
            "METADATA",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not a zip",
        "no METADATA",
        "other project",
        "other version",
        "invalid metadata",
        "path traversal",
        "metadata too large",
    ],
)
async def test_invalid_wheels_end_in_error(
    api: Api, session: dict, project_name: str, case: str
) -> None:  # R-F10
    data, source = _bad_wheels(project_name)[case]
    filename = f"{project_name.replace('-', '_')}-1.0-py3-none-any.whl"
    file = await api.create_file(session, filename, data)
    assert (await api.send_bytes(file, data)).status == 200
    document = await problem(await api.complete(file), 400)
    assert document["errors"][0]["source"] == source, document
    status = await api.status(file["links"]["file-upload-session"])
    assert status["status"] == "error"
    assert status["notices"]
    files = (await api.status(session["links"]["session"]))["files"]
    assert files[filename]["status"] == "error"
    # An errored file cannot be completed again, only deleted (R-F12) and re-uploaded.
    await problem(await api.complete(file), 409)
    await problem(await api.start_file(session, filename, data), 409)
    assert (await api.delete(file["links"]["file-upload-session"])).status == 204
    assert (await api.start_file(session, filename, data)).status == 202


@pytest.mark.parametrize(
    ("data", "source"),
    [(b"not gzip at all", "content"), (b"\x1f\x8b\x08\x00" + b"\x00" * 40, "content")],
)
async def test_invalid_sdists_end_in_error(
    api: Api, session: dict, project_name: str, data: bytes, source: str
) -> None:
    filename = f"{project_name.replace('-', '_')}-1.0.tar.gz"
    file = await api.create_file(session, filename, data)
    await api.send_bytes(file, data)
    document = await problem(await api.complete(file), 400)
    assert document["errors"][0]["source"] == source


async def test_sdist_without_pkg_info(
    api: Api, session: dict, project_name: str, tmp_path: Path
) -> None:
    import tarfile

    stem = project_name.replace("-", "_")
    path = tmp_path / f"{stem}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(f"{stem}-1.0/setup.py")
        archive.addfile(info, io.BytesIO(b""))
    file = await api.create_file(session, path.name, path.read_bytes())
    await api.send_bytes(file, path.read_bytes())
    await problem(await api.complete(file), 400)


ATTESTATION = {
    "version": 1,
    "verification_material": {"certificate": "Y2VydA==", "transparency_entries": [{"logIndex": 1}]},
    "envelope": {"statement": "c3RhdGVtZW50", "signature": "c2ln"},
}


async def test_attestations(api: Api) -> None:  # R-F9, R-W11: verified when attached
    session = await api.create_session(assets.PROJECT, assets.VERSION)
    data = assets.SDIST.read_bytes()
    file = await api.create_file(session, assets.SDIST.name, data)
    url = api.path(file["mechanism"]["attestations_url"])
    headers = api.headers(**{"Content-Type": "application/json"})
    bad_shape = [dict(ATTESTATION, envelope={"statement": "!!"})]
    for bad in ([], [{"version": 2}], bad_shape, {"a": 1}, [ATTESTATION]):  # last: unsigned
        await problem(await api.client.post(url, json=bad, headers=headers), 400)
    response = await api.client.post(url, json=[assets.attestation()], headers=headers)
    assert response.status == 200, await response.text()
    fid = file["links"]["file-upload-session"].rsplit("/", 1)[1]
    stored = await s3_object(api, keys.attestations(session["session-token"], fid))
    assert stored is not None
    await api.send_bytes(file, data)
    assert (await api.complete(file)).status == 201
    await problem(await api.client.post(url, json=[assets.attestation()], headers=headers), 409)


async def test_delete_file(api: Api, settings: Settings, session: dict, wheel: Path) -> None:
    completed = await api.upload(session, wheel)  # R-F12
    assert (await api.delete(completed["links"]["file-upload-session"])).status == 204
    assert (await api.status(session["links"]["session"]))["files"] == {}
    assert (await api.status(completed["links"]["file-upload-session"]))["status"] == "canceled"
    fid = completed["links"]["file-upload-session"].rsplit("/", 1)[1]
    assert await s3_keys(api, keys.file_data(session["session-token"], fid)) == []
    await problem(await api.delete(completed["links"]["file-upload-session"]), 404)
    await problem(await api.complete(completed), 404)
    pending = await api.create_file(session, wheel.name, wheel.read_bytes())
    assert (await api.delete(pending["links"]["file-upload-session"])).status == 204


async def test_delete_refused_while_processing(
    api: Api, session: dict, wheel: Path, bucket_records: RecordStore
) -> None:
    file = await api.create_file(session, wheel.name, wheel.read_bytes())
    fid = file["links"]["file-upload-session"].rsplit("/", 1)[1]
    await bucket_records.update(
        keys.file_upload(session["session-token"], fid), lambda d: {**d, "status": "processing"}
    )
    await problem(await api.delete(file["links"]["file-upload-session"]), 409)
    # ...and a session with a processing file can still be canceled (PEP 694).
    assert (await api.delete(session["links"]["session"])).status == 204


async def test_extend_file(api: Api, session: dict, wheel: Path) -> None:  # R-F13
    file = await api.create_file(session, wheel.name, wheel.read_bytes())
    response = await api.post_json(file["links"]["extend"], {"meta": META, "extend-for": 60})
    assert response.status == 200
    body = await response.json(content_type=UPLOAD_V2_JSON)
    assert body["expires-at"] > file["expires-at"]
    assert (await api.status(session["links"]["session"]))["expires-at"] == body["expires-at"]


async def test_deferred_completion(
    aiohttp_client, make_settings, project_name: str, wheel: Path
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(uploads={"defer_validation_above": 1})
    api = await make_api(aiohttp_client, settings)
    session = await api.create_session(project_name)
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)
    await api.send_bytes(file, data)
    response = await api.complete(file)
    assert response.status == 202
    assert response.headers["Location"] == file["links"]["file-upload-session"]
    assert (await response.json(content_type=UPLOAD_V2_JSON))["status"] == "processing"
    status = await api.settled(file["links"]["file-upload-session"], tries=50)
    assert status["status"] == "completed"


async def test_stalled_deferred_completion_is_resumed_by_the_sweeper(
    api: Api, settings: Settings, session: dict, wheel: Path, bucket_records: RecordStore
) -> None:
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)
    await api.send_bytes(file, data)
    fid = file["links"]["file-upload-session"].rsplit("/", 1)[1]
    # As if a replica accepted the completion and died before validating: a deferred
    # completion asks the sweep to look in at its deadline before it marks the file.
    due = DueIndex(bucket_records, settings.sessions.retention)
    await due.wake_at(session["session-token"], clock.now() - timedelta(minutes=1))
    await bucket_records.update(
        keys.file_upload(session["session-token"], fid),
        lambda d: {**d, "status": "processing", "processing_deadline": "2000-01-01T00:00:00Z"},
    )
    await api.client.app[SERVICES].sweeper.sweep()
    status = await api.settled(file["links"]["file-upload-session"], tries=50)
    assert status["status"] == "completed"


async def test_cancel_purges_everything_and_closes_file_urls(
    api: Api, settings: Settings, session: dict, wheel: Path, sdist: Path
) -> None:
    await api.upload(session, wheel)
    pending = await api.create_file(session, sdist.name, sdist.read_bytes())
    assert (await api.delete(session["links"]["session"])).status == 204
    sid = session["session-token"]
    assert await s3_keys(api, keys.session_data(sid)) == []
    assert await multipart_uploads(api, settings, keys.session_data(sid)) == []
    # The summary entries beside the record are purged with the data; the record stays.
    assert await s3_keys(api, keys.session_listing(sid)) == [keys.session(sid)]
    await problem(await api.send_bytes(pending, sdist.read_bytes()), 404)
    await problem(await api.start_file(session, wheel.name, wheel.read_bytes()), 404)
    await problem(await api.get(pending["links"]["file-upload-session"]), 404)


async def test_other_principal_is_forbidden_on_file_urls(
    api: Api, session: dict, wheel: Path
) -> None:  # R-G7
    file = await api.create_file(session, wheel.name, wheel.read_bytes())
    bob = Api(api.client, api_settings(api), BOB.authorization)
    await problem(await bob.get(file["links"]["file-upload-session"]), 403)
    await problem(await bob.send_bytes(file, wheel.read_bytes()), 403)
    await problem(await bob.complete(file), 403)
    await problem(await bob.delete(file["links"]["file-upload-session"]), 403)


def api_settings(api: Api) -> Settings:
    return api.client.app[SERVICES].settings


async def test_client_disconnect_mid_body_aborts_and_file_can_be_resent(
    aiohttp_client, make_settings, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import os

    settings = make_settings(s3={"part_size": 5 << 20})
    api = await make_api(aiohttp_client, settings)
    session = await api.create_session(project_name)
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=os.urandom(12 << 20))
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data)

    _, writer = await asyncio.open_connection(api.client.host, api.client.port)
    head = (
        f"POST {api.path(file['mechanism']['file_url'])} HTTP/1.1\r\n"
        f"Host: {api.client.host}\r\nAuthorization: {ALICE.authorization}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[: 11 << 20])  # two parts' worth, then vanish
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()

    sid = session["session-token"]
    for _ in range(50):
        if not await multipart_uploads(api, settings, keys.session_data(sid)):
            break
        await asyncio.sleep(0.1)
    assert await multipart_uploads(api, settings, keys.session_data(sid)) == []
    assert (await api.status(file["links"]["file-upload-session"]))["status"] == "pending"
    assert (await api.send_bytes(file, data)).status == 200
    assert (await api.complete(file)).status == 201


async def test_filename_already_on_the_index_is_409(
    api: Api, session: dict, wheel: Path, sdist: Path, pypiserver
) -> None:  # type: ignore[no-untyped-def]  # R-F5
    from tests.conftest import twine_upload

    twine_upload(pypiserver.url + "/", wheel)
    document = await problem(await api.start_file(session, wheel.name, wheel.read_bytes()), 409)
    assert document["type"].endswith("already-published")
    # Other files of the same release can still be added (e.g. an sdist after wheels).
    assert (await api.start_file(session, sdist.name, sdist.read_bytes())).status == 202


async def test_backend_down_at_create_is_503_not_500(
    aiohttp_client, make_settings, settings: Settings, project_name: str, wheel: Path
) -> None:  # type: ignore[no-untyped-def]
    from gateway.devstack import free_port

    session = await (await make_api(aiohttp_client, settings)).create_session(project_name)
    dead = f"http://127.0.0.1:{free_port()}"
    down = make_settings(
        s3={"prefix": settings.s3.prefix},
        backend={"upload_url": dead + "/", "simple_url": dead + "/simple/"},
    )
    api = await make_api(aiohttp_client, down)
    response = await api.start_file(session, wheel.name, wheel.read_bytes())
    await problem(response, 503)
    assert response.headers["Retry-After"]
    assert (await api.status(session["links"]["session"]))["files"] == {}
    # A first release cannot be told apart from a later one without the index: 503 too.
    other = await api.post_json(
        api.root, {"meta": META, "name": project_name + "-x", "version": "1"}
    )
    await problem(other, 503)


# -- Audit of the request rules (issue #15): the smallest input that breaks each one. --------


@pytest.mark.parametrize(
    "hashes",
    [
        {"sha256": "0" * 64, "SHA256": "1" * 64},  # one algorithm, two digests
        {"sha256": "0" * 63},  # one hex digit short
        {"sha256": "0" * 65},
        {"sha256": "0" * 62 + "g0"},
        {"sha256": None},
        {"nosuch256": "0" * 64},  # not a hashlib name
        {"MD5": "0" * 32},  # weak, whatever its spelling
        {"sha256": ["0" * 64]},
    ],
)
async def test_hash_rule_audit(api: Api, session: dict, wheel: Path, hashes: dict) -> None:  # R-F3
    response = await api.start_file(session, wheel.name, wheel.read_bytes(), hashes=hashes)
    document = await problem(response, 400)
    assert document["errors"][0]["source"].startswith("hashes")
    assert (await api.status(session["links"]["session"]))["files"] == {}


async def test_hashes_must_be_a_mapping(api: Api, session: dict, wheel: Path) -> None:  # R-F3
    for hashes in (None, [], "sha256=00", 5):
        response = await api.start_file(session, wheel.name, b"x", hashes=hashes)
        await problem(response, 400)


async def test_uppercase_digest_and_algorithm_are_accepted(
    api: Api, session: dict, wheel: Path
) -> None:  # R-F3: hex is hex; the digest is compared in lowercase
    data = wheel.read_bytes()
    hashes = {"SHA256": hashlib.sha256(data).hexdigest().upper()}
    file = await api.create_file(session, wheel.name, data, hashes=hashes)
    await api.send_bytes(file, data)
    assert (await api.complete(file)).status == 201


@pytest.mark.parametrize("size", [True, None, "1", 1.5, [], -(10**30)])
async def test_size_audit(api: Api, session: dict, wheel: Path, size: object) -> None:  # R-F4
    document = await problem(await api.start_file(session, wheel.name, b"x", size=size), 400)
    assert document["errors"][0]["source"] == "size"


async def test_size_as_json_integer_forms(api: Api, session: dict, wheel: Path) -> None:  # R-F4
    # JSON Schema's integer (OpenAPI 3.1): 1000.0 is the integer 1000; a huge one is too large.
    data = wheel.read_bytes()
    await api.create_file(session, wheel.name, data, size=float(len(data)))
    await api.delete((await api.status(session["links"]["session"]))["files"][wheel.name]["link"])
    await problem(await api.start_file(session, wheel.name, data, size=10**400), 409)


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("filename", None, 400),
        ("filename", "", 400),
        ("filename", 5, 400),
        ("mechanism", None, 400),
        ("mechanism", 5, 400),
        ("mechanism", "", 422),
        ("mechanism", "HTTP-POST-BYTES", 422),
    ],
)
async def test_file_field_audit(
    api: Api, session: dict, wheel: Path, field: str, value: object, status: int
) -> None:  # R-F2, R-F6
    if field == "filename":
        response = await api.start_file(session, value, b"x")  # type: ignore[arg-type]  # on purpose
    else:
        response = await api.start_file(session, wheel.name, b"x", **{field: value})
    document = await problem(response, status)
    assert field in str(document["errors"])


@pytest.mark.parametrize("missing", ["meta", "filename", "size", "hashes", "mechanism"])
async def test_every_file_field_is_required(
    api: Api, session: dict, wheel: Path, missing: str
) -> None:  # R-F1, R-G2
    body = {
        "meta": META,
        "filename": wheel.name,
        "size": 1,
        "hashes": {"sha256": "0" * 64},
        "mechanism": "http-post-bytes",
    }
    del body[missing]
    document = await problem(await api.post_json(session["links"]["upload"], body), 400)
    assert missing in str(document["errors"])


async def test_index_specific_meta_is_accepted_on_every_request(
    api: Api, session: dict, wheel: Path
) -> None:  # R-G2
    meta = {**META, "_example.org": {"anything": [1]}}
    data = wheel.read_bytes()
    file = await api.create_file(session, wheel.name, data, meta=meta)
    extend = await api.post_json(file["links"]["extend"], {"meta": meta, "extend-for": 1})
    assert extend.status == 200
    await api.send_bytes(file, data)
    assert (await api.post_json(file["links"]["complete"], {"meta": meta})).status == 201
    publish = await api.post_json(session["links"]["publish"], {"meta": meta})
    assert publish.status in (201, 202)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"meta": {}},
        {"meta": None},
        {"meta": {"api-version": "3.0"}},
        {"meta": {"api-version": "2.0\n"}},
        {"meta": {"api-version": "\u0662.0"}},  # ARABIC-INDIC TWO is a digit, not "2"
        {"meta": {"api-version": 2}},
    ],
)
async def test_meta_audit_on_complete_and_publish(
    api: Api, session: dict, wheel: Path, body: dict
) -> None:  # R-G2
    file = await api.create_file(session, wheel.name, wheel.read_bytes())
    for url in (file["links"]["complete"], session["links"]["publish"]):
        await problem(await api.post_json(url, body), 400)
    assert (await api.status(file["links"]["file-upload-session"]))["status"] == "pending"


async def test_json_endpoints_refuse_other_content_types(
    api: Api, session: dict, wheel: Path
) -> None:  # R-G2
    file = await api.create_file(session, wheel.name, wheel.read_bytes())
    urls = [
        session["links"]["upload"],
        session["links"]["extend"],
        session["links"]["publish"],
        file["links"]["complete"],
        file["links"]["extend"],
    ]
    for url in urls:
        response = await api.client.post(
            api.path(url), data=b'{"meta": {"api-version": "2.0"}}', headers=api.headers()
        )
        await problem(response, 415)
        response = await api.post_json(url, {"meta": META}, **{"Content-Type": "application/json"})
        await problem(response, 415)


async def test_attestations_audit(api: Api, session: dict, wheel: Path) -> None:  # R-F9
    file = await api.create_file(session, wheel.name, wheel.read_bytes())
    url = api.path(file["mechanism"]["attestations_url"])
    for body, content_type, status in [
        (b"[]", "application/json", 400),
        (b"{}", "application/json", 400),
        (b'[{"version": 2}]', "application/json", 400),
        (b"[", "application/json", 400),
        (b"[]", "text/plain", 415),
    ]:
        response = await api.client.post(
            url, data=body, headers=api.headers(**{"Content-Type": content_type})
        )
        await problem(response, status)
