"""The preview page in a real browser: Debian's chromium, headless, at desktop and phone widths
(issue #20). `make test` installs chromium when it is missing, so this runs everywhere."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from PIL import Image

from gateway.devstack import Server
from tests.conftest import twine_upload
from tests.distributions import build_sdist, build_wheel
from tests.integration.conftest import Api
from tests.integration.pages import MARKDOWN, RICH_HEADERS, Page

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root (CI), where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
DESKTOP, PHONE = (1280, 1000), (390, 844)


async def chromium(profile: Path, *args: str) -> bytes:
    executable = shutil.which("chromium")
    assert executable, "chromium is missing: `make install` installs it (apt-get install chromium)"
    process = await asyncio.create_subprocess_exec(
        executable,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, errors = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, errors.decode(errors="replace")[-2000:]
    return output


def assert_not_blank(png: Path, size: tuple[int, int]) -> None:
    with Image.open(png) as image:
        assert image.size == size
        pixels = image.convert("RGB")
        colors = pixels.getcolors(maxcolors=1 << 20) or []
        # Text, code blocks and the banner give many shades; a blank page gives one.
        assert len(colors) > 50, f"{png.name}: only {len(colors)} colors"
        ink = sum(count for count, rgb in colors if sum(rgb) < 3 * 160)
        assert ink > 0.005 * size[0] * size[1], f"{png.name}: almost no dark pixels"
        # Readable on a phone: nothing runs off the right edge (hidden scrollbars keep
        # the width; an overflowing layout would be cut there, mid-text).
        right_edge = pixels.crop((size[0] - 4, 0, size[0], size[1])).getcolors(1 << 16) or []
        assert len(right_edge) < 10, f"{png.name}: content reaches the right edge"


async def test_the_preview_renders_in_chromium_at_two_widths(
    live: Api, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    twine_upload(
        pypiserver.url + "/",
        build_wheel(earlier, project_name, "0.9", tag="cp312-cp312-win_amd64"),
    )
    session = await live.create_session(project_name, "1.0")
    options = {
        "summary": "A release reviewed before it is published",
        "requires_dist": ('requests>=2; python_version < "3.14"',),
        "headers": RICH_HEADERS,
        "description": MARKDOWN,
    }
    await live.upload(session, build_wheel(tmp_path, project_name, "1.0", **options))  # type: ignore[arg-type]
    await live.upload(session, build_sdist(tmp_path, project_name, "1.0", **options))  # type: ignore[arg-type]
    url = session["links"]["stage"] + "+preview/"

    dom = Page((await chromium(tmp_path / "profile", "--dump-dom", url)).decode())
    [heading] = dom.ids["description"].find_all("h1")
    assert heading.text.strip() == "Release notes heading"
    assert dom.text("project") == f"{project_name} 1.0"
    assert not dom.root.find_all("script")

    for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        png = tmp_path / f"preview-{name}.png"
        await chromium(
            tmp_path / f"profile-{name}",
            f"--screenshot={png}",
            f"--window-size={size[0]},{size[1]}",
            url,
        )
        assert_not_blank(png, size)
