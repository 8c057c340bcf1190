"""The shape the project keeps its code in (issue #16): no function in ``gateway/`` over 60
lines. A longer one is split into named steps, not cut anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

PACKAGE = Path(gateway.__file__).parent
MAX_FUNCTION_LINES = 60


def function_lengths(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """(lines, "file:line name") of every function in ``path``, decorators and docstring
    included, nested functions counted on their own and inside their parent."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lengths = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            assert node.end_lineno is not None
            where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
            lengths.append((node.end_lineno - start + 1, where))
    return lengths


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(70))
    module = tmp_path / "gateway" / "long.py"
    module.parent.mkdir()
    module.write_text(
        f"@decorated\nasync def long() -> None:\n{body}\n\ndef short() -> None:\n    pass\n"
    )
    assert function_lengths(module, tmp_path) == [
        (72, "gateway/long.py:2 long"),
        (2, "gateway/long.py:75 short"),
    ]


def test_no_function_in_gateway_is_over_60_lines() -> None:
    too_long = [
        f"{where} ({lines} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for lines, where in function_lengths(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not too_long, "split by meaning into named steps:\n" + "\n".join(too_long)


# -- the client (issue #25): it reuses the protocol and the packaging rules, nothing else ------

CLIENT = PACKAGE / "client"
CLIENT_MAY_IMPORT = ("gateway.client", "gateway.protocol", "gateway.distribution")


def gateway_imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, str]]:
    """(module, "file:line") of every ``gateway.*`` module ``path`` imports, at any depth
    (an import inside a function counts as much as one at the top)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        found += [(name, where) for name in names if name.split(".")[0] == "gateway"]
    return found


def outside_the_client(name: str) -> bool:
    return not any(name == ok or name.startswith(f"{ok}.") for ok in CLIENT_MAY_IMPORT)


def test_the_import_check_sees_a_server_import(tmp_path: Path) -> None:
    module = tmp_path / "gateway" / "client" / "m.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "import gateway.protocol.media\nimport json\n"
        "def f() -> None:\n    from gateway.domain.errors import invalid\n"
    )
    imports = gateway_imports(module, tmp_path)
    assert imports == [
        ("gateway.protocol.media", "gateway/client/m.py:1"),
        ("gateway.domain.errors", "gateway/client/m.py:4"),
    ]
    assert [name for name, _ in imports if outside_the_client(name)] == ["gateway.domain.errors"]


def test_the_client_imports_only_the_protocol_and_distribution_of_the_server() -> None:
    """``gateway/client/`` runs on a publisher's machine: of the gateway's packages it may use
    ``protocol/`` (the wire) and ``distribution/`` (the packaging rules), never the server's
    domain, services or mechanisms; and those two use nothing else of the gateway."""
    # What the client imports must not pull the server in behind it either.
    shared = [PACKAGE / "protocol", PACKAGE / "distribution"]
    foreign = [
        f"{where} imports {name}"
        for folder in (CLIENT, *shared)
        for path in sorted(folder.rglob("*.py"))
        for name, where in gateway_imports(path)
        if outside_the_client(name)
    ]
    assert not foreign, "the client reaches into the server:\n" + "\n".join(foreign)
