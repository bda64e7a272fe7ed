"""The layering rules of docs/architecture.md, checked on the source: lower layers never import upper ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "datacenter_power"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (INTEGRATION / "device", ("homeassistant", "dcp_sim", "dcp_eval")),
        (INTEGRATION / "engine", ("homeassistant", "dcp_sim", "dcp_eval", "pymodbus")),
        (ROOT / "dcp_sim", ("homeassistant", "dcp_eval")),
    ],
    ids=["device", "engine", "simulator"],
)
def test_lower_layers_do_not_import_upper_ones(package: Path, forbidden: tuple[str, ...]) -> None:
    """The device layer, the engine and the simulator stay free of Home Assistant (and each other)."""
    files = sorted(package.rglob("*.py"))
    assert files, f"{package} has no modules"
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in _imports(path)
        if name.split(".")[0] in forbidden
    }
    assert not offenders, offenders
