"""What the client commands print: messages and progress bars on stderr, results on stdout
(one JSON object per line with ``--json``), and errors in words, lines and documents."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.client.api import OperationFailed, ProblemError
from gateway.client.local import Distribution


class Reporter:
    """Human messages on stderr, results on stdout (JSON lines with ``--json``), progress bars."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, json_mode: bool = False):
        from rich.console import Console

        self.quiet = quiet
        self.verbose = verbose
        self.json_mode = json_mode
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def _say(self, message: str, style: str | None = None) -> None:
        self.console.print(message, markup=False, highlight=False, style=style, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._say(message)

    def step(self, message: str) -> None:
        if self.verbose:
            self._say(message, style="dim")

    def warn(self, message: str) -> None:
        self._say(f"warning: {message}", style="yellow")

    def error(self, message: str) -> None:
        self._say(f"error: {message}", style="red")

    def problem(self, context: str, exc: BaseException) -> None:
        self.error(f"{context}{describe_error(exc)}")
        for line in error_lines(exc):
            self._say(f"  {line}", style="red")

    def result(self, document: Mapping[str, Any], lines: list[str]) -> None:
        if self.json_mode:
            print(json.dumps(document), flush=True)
        else:
            for line in lines:
                print(line, flush=True)

    @contextlib.contextmanager
    def transfer(self, files: list[Distribution]) -> Iterator[Transfer]:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        enabled = not self.quiet and self.console.is_terminal
        progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        total = progress.add_task(
            "all files", total=sum(f.size for f in files), visible=len(files) > 1
        )
        with progress:
            yield Transfer(progress, total)


@dataclass
class Transfer:
    progress: Any
    total: Any

    def track(self, dist: Distribution) -> Callable[[int], None]:
        task = self.progress.add_task(dist.filename, total=dist.size)

        def advance(count: int) -> None:
            self.progress.advance(task, count)
            self.progress.advance(self.total, count)

        return advance


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ProblemError):
        text = f"{exc.status} {exc.title}"
        return f"{text}: {exc.detail}" if exc.detail else text
    return str(exc)


def error_lines(exc: BaseException) -> list[str]:
    lines = []
    if isinstance(exc, ProblemError):
        for item in exc.errors:
            if item.get("message") and item["message"] != exc.detail:
                source = item.get("source")
                lines.append(f"- {source}: {item['message']}" if source else f"- {item['message']}")
    if isinstance(exc, OperationFailed):
        lines.extend(f"- {notice}" for notice in exc.notices)
    return lines


def error_document(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ProblemError):
        return exc.as_dict()
    document: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, OperationFailed):
        document["notices"] = exc.notices
    return document
