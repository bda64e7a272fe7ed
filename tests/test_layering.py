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


def test_the_executor_is_free_of_home_assistant() -> None:
    """The staged executor runs in Home Assistant and in ``dcp_eval`` alike: it imports only the
    standard library, the engine and the device layer's reading types (both HA-free, checked above),
    never an HA module of the integration, not even relatively."""
    path = INTEGRATION / "executor.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    offenders: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            offenders |= {a.name for a in node.names if a.name.split(".")[0] in _NOT_IN_EXECUTOR}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] in _NOT_IN_EXECUTOR:
                offenders.add(module)
            if node.level == 1 and module.split(".")[0] not in {"engine", "device"}:
                offenders.add(f".{module}")
            if node.level > 1:
                offenders.add("." * node.level + module)
    assert not offenders, offenders


_NOT_IN_EXECUTOR = ("homeassistant", "dcp_sim", "dcp_eval", "pymodbus", "custom_components")
