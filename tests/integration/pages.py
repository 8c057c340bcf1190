"""The preview page's tests' shared parts: a release's rich metadata and long description,
and an HTML document parsed into a small tree (by the test itself, or by headless chromium's
``--dump-dom``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

MARKDOWN = """# Release notes heading

Some *emphasis* and a [link](https://example.org/docs).

<script>alert("readme")</script>

```python
print("hello")
```
"""

RICH_HEADERS = (
    "Author: Ann Author",
    "Author-email: ann@example.org",
    "Maintainer: Max Maintainer",
    "License-Expression: MIT OR Apache-2.0",
    "Classifier: Programming Language :: Python :: 3",
    "Classifier: Operating System :: OS Independent",
    "Project-URL: Source, https://example.org/source",
    "Project-URL: Tricky, javascript:alert(1)",
    "Provides-Extra: cli",
    'Requires-Dist: click>=8; extra == "cli"',
    "Description-Content-Type: text/markdown",
)
VOID = {"meta", "link", "br", "img", "input", "hr", "source", "wbr", "col", "area"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def find_all(self, tag: str) -> list[Element]:
        found = [self] if self.tag == tag else []
        for child in self.children:
            found += child.find_all(tag)
        return found


class Page(HTMLParser):
    """The document as a small tree; elements with an id indexed by it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.ids: dict[str, Element] = {}
        self._open = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self._open[-1].children.append(element)
        if element.attrs.get("id"):
            self.ids[str(element.attrs["id"])] = element
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def text(self, element_id: str) -> str:
        return " ".join(self.ids[element_id].text.split())
