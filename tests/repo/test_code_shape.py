"""The shape the project keeps its code in: no function in ``gateway/`` over 60 lines (issue
#16), no class over 300 and no file over 600 (issue #25). A longer one is split by meaning into
named steps, one concept per module, not cut anywhere."""

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


# -- classes and files (issue #25) --------------------------------------------------------------

MAX_CLASS_LINES = 300
MAX_FILE_LINES = 600


def class_lengths(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """(lines, "file Class") of every class in ``path``, decorators and docstring included,
    a nested class counted on its own and inside its parent."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lengths = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            assert node.end_lineno is not None
            lengths.append((node.end_lineno - start + 1, f"{path.relative_to(root)} {node.name}"))
    return lengths


def over_the_limits(package: Path = PACKAGE) -> dict[str, int]:
    """Every file of ``package`` over MAX_FILE_LINES and every class over MAX_CLASS_LINES, with
    its lines."""
    over = {}
    for path in sorted(package.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES:
            over[str(path.relative_to(package.parent))] = lines
        over |= {
            where: lines
            for lines, where in class_lengths(path, package.parent)
            if lines > MAX_CLASS_LINES
        }
    return over


def test_the_check_sees_a_long_class_and_a_long_file(tmp_path: Path) -> None:
    methods = "".join(f"    def m{i}(self) -> None:\n        pass\n\n" for i in range(110))
    padding = "".join(f"X{i} = {i}\n" for i in range(300))
    module = tmp_path / "gateway" / "long.py"
    module.parent.mkdir()
    module.write_text(f"@decorated\nclass Long:\n{methods}\nclass Short:\n    pass\n{padding}")
    (tmp_path / "gateway" / "short.py").write_text("class Fine:\n    pass\n")
    assert class_lengths(module, tmp_path) == [
        (331, "gateway/long.py Long"),
        (2, "gateway/long.py Short"),
    ]
    assert over_the_limits(tmp_path / "gateway") == {
        "gateway/long.py": 635,
        "gateway/long.py Long": 331,
    }


def test_no_class_in_gateway_is_over_300_lines_nor_any_file_over_600() -> None:
    over = [f"{where} ({lines} lines)" for where, lines in over_the_limits().items()]
    assert not over, "split by concept, one per module:\n" + "\n".join(over)


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
