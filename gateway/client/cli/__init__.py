"""``upload-gateway publish``, ``upload-gateway session ...`` and ``upload-gateway audit``: an
Upload 2.0 client CLI.

``publish FILES...`` checks every file locally, groups them by (normalized name, version) into
one publishing session each, uploads the files of a session in parallel, completes them and
publishes — or, with ``--stage``, leaves the session open and prints its stage URL and a short
local id for ``session publish|cancel|status|extend ID``. Against a URL that does not speak
Upload 2.0 it falls back to the legacy upload API (``--protocol auto``, the default).

Exit status: 0 done, 1 the server refused or could not be reached, 2 a usage or local-file
error, 130 interrupted (Ctrl+C cancels the sessions this command created, unless ``--stage``).

One module per concern: ``parsing`` (the arguments), ``context`` (what a command runs in),
``output``, ``publish`` (with ``publish_files``, ``publish_legacy`` and ``publish_report``),
``session_commands`` and ``audit_command``.
"""

from gateway.client.cli.parsing import main, register

__all__ = ["main", "register"]
