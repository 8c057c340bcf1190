"""The documentation stays navigable: README short, every relative link and anchor resolves,
every requirement id cited in code, tests or docs exists in docs/requirements.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(
    [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "deploy" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)
FIGURES = ROOT / "docs" / "figures.md"
# A table of figures (its first column headed "figure"), or a row naming a benchmark figure
# (`upload_throughput_ratio`, `release_s3_calls_per_file`...).
FIGURE_ROW = re.compile(
    r"^\|\s*figure\s*\|"
    r"|^\|[^|\n]*`[a-z0-9_]+_(?:ratio|units|mib|share|per_file|per_page|rps|p99_ms|s3_requests)`",
    re.MULTILINE,
)
REQUIREMENTS = ROOT / "docs" / "requirements.md"

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REQUIREMENT_ID = re.compile(r"\bR-[A-Z]+[0-9]+\b")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def prose(path: Path) -> str:
    """The Markdown outside code blocks: links inside them are examples, not links."""
    return FENCE.sub("", path.read_text())


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces become hyphens."""
    headings = re.findall(r"^#+ (.+)$", prose(path), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(path))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:...
    ]


def test_readme_is_a_ten_minute_read() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference text to docs/"


def test_figures_are_tabled_on_the_figures_page_only() -> None:
    # The changelog keeps the figures of their time; every other page links docs/figures.md.
    assert FIGURE_ROW.search(FIGURES.read_text()), "docs/figures.md lost its figures table"
    elsewhere = [
        str(doc.relative_to(ROOT))
        for doc in DOCS
        if doc not in (FIGURES, ROOT / "CHANGELOG.md") and FIGURE_ROW.search(prose(doc))
    ]
    assert not elsewhere, f"figures tabled outside docs/figures.md: {elsewhere}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in relative_links(doc):
        file_part, _, fragment = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_cited_requirement_exists() -> None:
    defined = set(re.findall(r"^- \*\*(R-[A-Z]+[0-9]+)\*\*", REQUIREMENTS.read_text(), re.M))
    sources = [
        *(ROOT / "gateway").rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(path for path in DOCS if path != REQUIREMENTS),
    ]
    missing = {
        f"{requirement} ({source.relative_to(ROOT)})"
        for source in sources
        for requirement in REQUIREMENT_ID.findall(source.read_text())
        if requirement not in defined
    }
    assert defined, "docs/requirements.md defines no R- ids"
    assert not missing, "cited but not in docs/requirements.md: " + ", ".join(sorted(missing))
