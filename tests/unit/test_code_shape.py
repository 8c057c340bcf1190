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
