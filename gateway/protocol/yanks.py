"""PEP 592 yank for any index (R-W10): the documents of ``PUT`` / ``DELETE
{api root}yanks/{project}/{version}``. Shared by the gateway and the client CLI."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_REASON = 1000


class YankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        None, max_length=MAX_REASON, description="Why; installers show it (PEP 592)."
    )


class YankState(BaseModel):
    """A release's yank as the gateway keeps it; the index itself never learns of it."""

    model_config = ConfigDict(extra="ignore")

    project: str
    version: str
    yanked: bool
    reason: str | None = None
    files: list[str] = Field(default_factory=list, description="The release's files on the index.")
