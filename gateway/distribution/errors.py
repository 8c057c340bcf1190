"""What the packaging rules refuse, in their own terms: the server answers it as a problem,
the client names the file in its own words."""

from __future__ import annotations


class RuleBroken(ValueError):
    """A name, version, filename or declared hash the packaging rules refuse. ``slug`` names
    the rule broken and ``source`` the part of the request at fault."""

    def __init__(self, slug: str, detail: str, source: str) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail
        self.source = source


class DistributionError(Exception):
    """The archive is not a valid distribution.

    ``source`` names the part at fault ('content', 'METADATA', 'PKG-INFO',
    'metadata.name', ...); ``str(exc)`` is a sentence fit for a problem document.
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message
