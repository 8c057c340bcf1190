"""The preview page of a stage, parsed as HTML (issue #20, R-S1, R-S2), and the index's own
checks at completion under the warehouse profile."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.devstack import Server, executable
from gateway.domain import clock
from tests.conftest import twine_upload
from tests.distributions import build_sdist, build_wheel, distribution_stem, sha256_of
from tests.integration.conftest import META, Api, pip, problem
from tests.integration.pages import MARKDOWN, RICH_HEADERS, Page

RST = "Title in rst\n============\n\nA paragraph with *emphasis*.\n\n- one\n- two\n"
PLAIN = "Plain title\n\n    indented <b>not bold</b>\n"
BROKEN_RST = "Broken\n======\n\n.. not-a-directive:: here\n"


async def fetch_page(url: str) -> tuple[aiohttp.ClientResponse, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:  # no credentials
        return response, await response.text()


async def preview_of(session: dict[str, Any]) -> Page:
    response, html = await fetch_page(session["links"]["stage"] + "+preview/")
    assert response.status == 200, html
    assert response.content_type == "text/html"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    return Page(html)


async def stage_wheel(
    api: Api, project: str, tmp_path: Path, version: str = "1.0", **options: Any
) -> tuple[dict[str, Any], Path]:
    session = await api.create_session(project, version)
    wheel = build_wheel(tmp_path, project, version, **options)
    await api.upload(session, wheel)
    return session, wheel


async def test_the_page_shows_the_release_as_the_index_will(
    live: Api, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    hostile = 'Summary with <img src=x onerror="alert(1)"> & more'
    session, wheel = await stage_wheel(
        live,
        project_name,
        tmp_path,
        summary=hostile,
        requires_python=">=3.9",
        requires_dist=('requests>=2; python_version < "3.14"',),
        headers=RICH_HEADERS,
        description=MARKDOWN,
    )
    sdist = build_sdist(tmp_path, project_name, "1.0", headers=RICH_HEADERS, description=MARKDOWN)
    # Attestations are verified when attached (R-W11): the preview's "verified: <publisher>"
    # cell is tested with a real one in tests/integration/test_gates.py.
    await live.upload(session, sdist)

    page = await preview_of(session)
    assert page.text("project") == f"{project_name} 1.0"
    assert page.text("summary") == hostile  # shown as text, never as markup
    assert not page.root.find_all("script")
    assert not [img for img in page.root.find_all("img") if "onerror" in img.attrs]
    assert page.text("meta-author") == "Ann Author, ann@example.org"
    assert page.text("meta-maintainer") == "Max Maintainer"
    assert page.text("meta-license") == "MIT OR Apache-2.0"
    assert page.text("meta-requires-python") == ">=3.9"
    dependencies = page.text("meta-dependencies")
    assert 'requests>=2; python_version < "3.14"' in dependencies
    assert 'click>=8; extra == "cli"' in dependencies
    assert page.text("meta-extras") == "cli"
    assert "Programming Language :: Python :: 3" in page.text("meta-classifiers")
    links = {a.attrs["href"] for a in page.ids["meta-project-links"].find_all("a")}
    assert links == {"https://example.org/source"}  # javascript: stays text
    assert "javascript:alert(1)" in page.text("meta-project-links")

    description = page.ids["description"]
    [heading] = description.find_all("h1")
    assert heading.text.strip() == "Release notes heading"
    assert [e.text for e in description.find_all("em")] == ["emphasis"]
    assert 'alert("readme")' in description.text  # the readme's script is text, escaped

    rows = page.ids["files"].find_all("tr")[1:]
    cells = {row.find_all("td")[0].text: [td.text for td in row.find_all("td")] for row in rows}
    assert list(cells) == [wheel.name, sdist.name]  # the order the publish sends them
    assert cells[wheel.name][1] == f"1.4 KiB ({wheel.stat().st_size} bytes)"
    assert cells[wheel.name][2:] == ["py3-none-any", sha256_of(wheel), "no"]
    assert cells[sdist.name][2:] == ["source", sha256_of(sdist), "no"]
    stage = session["links"]["stage"]
    assert page.text("pip-install") == f"pip install --extra-index-url {stage} {project_name}==1.0"
    assert page.text("uv-install") == (
        f"uv pip install --extra-index-url {stage} {project_name}==1.0"
    )
    assert "no other release" in page.text("comparison")
    # The sdist was built without the wheel's summary, Requires-Python and dependencies.
    differs = page.text("metadata-differs")
    assert "On: Summary, Requires-Python, Requires-Dist." in differs
    assert wheel.name in differs
    # The lines are copy-ready: pip and uv resolve the release from the stage with them.
    command = shlex.split(page.text("pip-install"))
    assert command[:2] == ["pip", "install"]
    await pip(*command[1:], "--dry-run", "--no-deps", "--index-url", pypiserver.url + "/simple/")
    await uv_dry_run(shlex.split(page.text("uv-install")), pypiserver, tmp_path)


async def uv_dry_run(command: list[str], pypiserver: Server, tmp_path: Path) -> None:
    assert command[:3] == ["uv", "pip", "install"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    process = await asyncio.create_subprocess_exec(
        executable("uv"),
        *command[1:],
        "--dry-run",
        "--no-deps",
        "--no-cache",
        "--python",
        str(venv / "bin" / "python"),
        "--index-url",
        pypiserver.url + "/simple/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()
    assert "Would install 1 package" in output.decode(), output.decode()


async def test_the_stage_root_links_to_the_preview(
    live: Api, project_name: str, tmp_path: Path
) -> None:
    session, _ = await stage_wheel(live, project_name, tmp_path)
    stage = session["links"]["stage"]
    _, html = await fetch_page(stage)
    root = Page(html)
    [form] = root.root.find_all("form")
    assert form.attrs["action"] == stage + "+preview/"
    assert "Preview" in form.text
    # PEP 503: the root's anchors are its projects, and nothing else.
    assert [a.attrs["href"] for a in root.root.find_all("a")] == [stage + project_name + "/"]
    [alternate] = root.root.find_all("link")
    assert alternate.attrs["href"] == stage + "+preview/"


@pytest.mark.parametrize(
    ("content_type", "text", "element", "expected"),
    [
        ("text/markdown", MARKDOWN, "h1", "Release notes heading"),
        ("text/x-rst", RST, "h1", "Title in rst"),
        (None, RST, "h1", "Title in rst"),  # reStructuredText when none is declared
        ("text/plain", PLAIN, "pre", "Plain title"),
    ],
)
async def test_readme_formats(
    live: Api,
    project_name: str,
    tmp_path: Path,
    content_type: str | None,
    text: str,
    element: str,
    expected: str,
) -> None:
    headers = (f"Description-Content-Type: {content_type}",) if content_type else ()
    session, _ = await stage_wheel(live, project_name, tmp_path, headers=headers, description=text)
    page = await preview_of(session)
    rendered = page.ids["description"].find_all(element)
    assert rendered, page.ids["description"].text
    assert expected in rendered[0].text
    if content_type == "text/plain":
        assert "<b>not bold</b>" in rendered[0].text  # shown, not interpreted
        assert not page.ids["description"].find_all("b")
    assert "description-warning" not in page.ids


async def test_a_description_that_does_not_render_is_a_warning_on_the_page(
    live: Api, project_name: str, tmp_path: Path
) -> None:
    # The pypiserver profile does not run PyPI's checks: the file completes, the page warns.
    session, wheel = await stage_wheel(live, project_name, tmp_path, description=BROKEN_RST)
    page = await preview_of(session)
    warning = page.text("description-warning")
    assert "failed to render in the default format of reStructuredText" in warning
    assert 'Unknown directive type "not-a-directive"' in warning
    assert wheel.name in page.text("index-checks")
    assert "metadata.description" in page.text("index-checks")
    assert not page.ids["description"].find_all("h1")


async def test_the_warehouse_profile_refuses_at_completion(
    live_gateway, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # An earlier release on pypiserver: the warehouse profile then reads a listing there.
    (tmp_path / "earlier").mkdir()
    twine_upload(pypiserver.url + "/", build_wheel(tmp_path / "earlier", project_name, "0.9"))
    api = await live_gateway(backend={"kind": "warehouse"})
    session = await api.create_session(project_name, "1.0")
    for description, headers, source in [
        (BROKEN_RST, (), "metadata.description"),
        ("# Fine", ("Classifier: Not :: A :: Classifier",), "metadata.classifiers"),
    ]:
        wheel = build_wheel(tmp_path, project_name, "1.0", headers=headers, description=description)
        data = wheel.read_bytes()
        file = await api.create_file(session, wheel.name, data)
        await api.send_bytes(file, data)
        refused = await problem(await api.complete(file), 400)
        assert refused["type"].endswith("invalid-distribution"), refused
        assert refused["errors"][0]["source"] == source, refused
        status = await api.status(file["links"]["file-upload-session"])
        assert status["status"] == "error"
        assert (await api.delete(file["links"]["file-upload-session"])).status == 204
    fine = build_wheel(tmp_path, project_name, "1.0", description=RST)
    await api.upload(session, fine)
    page = await preview_of(session)
    assert "index-checks" not in page.ids


async def test_comparison_with_the_latest_release_on_the_index(
    live: Api, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    old_options: dict[str, Any] = {
        "requires_python": ">=3.8",
        "requires_dist": ("requests>=2", 'rich; python_version < "3.12"', "attrs"),
        "headers": ("Provides-Extra: old",),
    }
    old_tags = [
        "cp311-cp311-manylinux_2_28_x86_64",
        "cp312-cp312-manylinux_2_28_x86_64",
        "cp312-cp312-win_amd64",
    ]
    oldest = build_wheel(earlier, project_name, "0.5", tag="py3-none-any")
    old_files = [build_wheel(earlier, project_name, "1.0", tag=t, **old_options) for t in old_tags]
    old_sdist = build_sdist(earlier, project_name, "1.0", **old_options)
    twine_upload(pypiserver.url + "/", oldest, *old_files, old_sdist)

    session = await live.create_session(project_name, "2.0")
    new_options: dict[str, Any] = {
        "requires_python": ">=3.10",
        "requires_dist": ("requests>=2.31", "attrs", "httpx>=0.27"),
        "headers": ("Provides-Extra: new",),
    }
    await live.upload(
        session,
        build_wheel(tmp_path, project_name, "2.0", tag=old_tags[1], **new_options),
    )
    await live.upload(session, build_sdist(tmp_path, project_name, "2.0", **new_options))

    page = await preview_of(session)
    comparison = page.text("comparison")
    assert "Compared with 1.0, the latest release on the index" in comparison
    stem = distribution_stem(project_name)
    assert f"{stem}-1.0-cp311-cp311-manylinux_2_28_x86_64.whl" in comparison  # read by ranges
    changes = [" ".join(li.text.split()) for li in page.ids["changes"].find_all("li")]
    assert changes == [
        "changed Requires-Python: >=3.8 → >=3.10",
        "added httpx: httpx>=0.27",
        "changed requests: requests>=2 → requests>=2.31",
        'removed rich; python_version < "3.12": rich',
        "added new: new",
        "removed old: old",
    ]
    missing = page.text("missing-files")
    assert f"{stem}-1.0-cp311-cp311-manylinux_2_28_x86_64.whl" in missing
    assert f"{stem}-1.0-cp312-cp312-win_amd64.whl" in missing
    assert old_files[1].name not in missing  # same tags in 2.0
    assert old_sdist.name not in missing
    assert page.text("missing-platforms") == "Platforms no longer covered: win_amd64"
    assert "metadata-differs" not in page.ids  # the wheel and the sdist agree


async def test_the_preview_is_gone_with_the_stage(
    live: Api, project_name: str, tmp_path: Path
) -> None:  # R-S2
    session, wheel = await stage_wheel(live, project_name, tmp_path)
    url = session["links"]["stage"] + "+preview/"
    wrong = url.replace(session["session-token"], "B" * len(session["session-token"]))
    assert (await fetch_page(wrong))[0].status == 404
    assert (await live.delete(session["links"]["session"])).status == 204
    assert (await fetch_page(url))[0].status == 404
    second = await live.create_session(project_name)
    await live.upload(second, wheel)
    assert (await fetch_page(second["links"]["stage"] + "+preview/"))[0].status == 200
    publish = await live.post_json(second["links"]["publish"], {"meta": META})
    assert publish.status == 201, await publish.text()
    assert (await fetch_page(second["links"]["stage"] + "+preview/"))[0].status == 404


async def test_the_preview_is_gone_when_the_stage_expires(
    live_gateway, project_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]  # R-S2
    # The clock is steered, not slept on, as in test_expiry.
    moment = [clock.now()]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    api = await live_gateway(sessions={"lifetime": 60})
    session, _ = await stage_wheel(api, project_name, tmp_path)
    url = session["links"]["stage"] + "+preview/"
    assert (await fetch_page(url))[0].status == 200
    moment[0] += timedelta(seconds=61)
    response, body = await fetch_page(url)
    assert response.status == 404, body
