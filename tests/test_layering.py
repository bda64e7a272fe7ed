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


def _engine_graph() -> dict[str, set[str]]:
    """Engine module -> the engine modules it imports, at any place in the file (``TYPE_CHECKING``
    blocks and imports inside functions included: a cycle hidden that way is still a cycle)."""
    engine = INTEGRATION / "engine"
    modules = {path.stem for path in engine.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(engine.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level != 1:
                continue
            if node.module:
                targets.add(node.module.split(".")[0])
            else:
                targets.update(alias.name for alias in node.names)
        graph[path.stem] = (targets & modules) - {path.stem}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as a path that returns to its start ([]: none)."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for target in sorted(graph[node]):
            if found := visit(target, [*path, node]):
                return found
        done.add(node)
        return []

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return []


def test_the_engine_has_no_import_cycle() -> None:
    """Every engine module can be read knowing only the modules below it (issue 22: ``Mode`` in
    ``decisions.py`` once tied decisions, element_forecast and policy_config in a circle)."""
    graph = _engine_graph()
    assert {"decisions", "modes", "policy"} <= graph.keys()
    assert not _cycle(graph), " -> ".join(_cycle(graph))


def test_the_cycle_check_sees_a_cycle() -> None:
    """The check above is not vacuous: it names the circle the engine used to have."""
    circle = {"decisions": {"element_forecast"}, "element_forecast": {"policy_config"}}
    circle["policy_config"] = {"decisions"}
    assert _cycle(circle) == ["decisions", "element_forecast", "policy_config", "decisions"]
