"""A long description rendered exactly as Warehouse renders it, with ``readme_renderer``.

Warehouse picks the renderer by the Description-Content-Type (reStructuredText when none is
declared, plain text for a type it does not know), ignores its parameters (Markdown is always
rendered as GFM), and refuses an upload whose description does not render. The renderers
also sanitize: their HTML is safe to embed in a page. Pure, no I/O.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from email.message import EmailMessage

import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt

__all__ = ["DEFAULT_CONTENT_TYPE", "RenderedDescription", "render_description"]

DEFAULT_CONTENT_TYPE = "text/x-rst"
_MARKDOWN, _PLAIN = "text/markdown", "text/plain"


@dataclass(frozen=True)
class RenderedDescription:
    content_type: str  # the type it was rendered as
    declared: bool  # False: no Description-Content-Type, reStructuredText by default
    html: str | None  # sanitized HTML; None when it does not render
    error: str | None = None  # the renderer's own message when it does not render

    def failure(self) -> str:
        """Warehouse's refusal, followed by what the renderer said."""
        if self.declared:
            message = f"The description failed to render for {self.content_type!r}."
        else:
            message = "The description failed to render in the default format of reStructuredText."
        return f"{message} {self.error}" if self.error else message


# The files of a release mostly share one description: a page listing hundreds of them
# renders it once, not once per file.
@functools.lru_cache(maxsize=16)
def render_description(text: str, content_type: str | None) -> RenderedDescription:
    declared = bool(content_type)
    chosen = _media_type(content_type) if content_type else DEFAULT_CONTENT_TYPE
    if chosen == DEFAULT_CONTENT_TYPE:
        messages = io.StringIO()
        html = readme_renderer.rst.render(text, stream=messages)
        error = None if html is not None else _first_lines(messages.getvalue())
        return RenderedDescription(chosen, declared, html, error)
    if chosen == _MARKDOWN:
        return RenderedDescription(chosen, declared, readme_renderer.markdown.render(text))
    rendered = readme_renderer.txt.render(text)
    if chosen == _PLAIN:
        rendered = f"<pre>{rendered}</pre>"  # as Warehouse does, to keep the whitespace
    return RenderedDescription(chosen, declared, rendered)


def _media_type(content_type: str) -> str:
    # The email package parses the header as Warehouse does (and lowercases it); anything it
    # cannot parse comes back as text/plain.
    message = EmailMessage()
    message["content-type"] = content_type
    return message.get_content_type()


def _first_lines(messages: str, limit: int = 5) -> str:
    """docutils' report, shortened to what fits in a problem document or a page."""
    lines = [line.strip() for line in messages.strip().splitlines() if line.strip()]
    shown = " ".join(lines[:limit])
    return shown + (" …" if len(lines) > limit else "")
