"""The layering rules of docs/architecture.md, checked on the source: lower layers never import upper ones."""

from __future__ import annotations

import ast
from collections.abc import Iterator
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


HA_LAYERS: tuple[str, ...] = (
    # What needs nothing of the integration but its constants (words, numbers, storage rows).
    "const",
    "events",
    "naming",
    "devices",
    "device_listeners",
    "snapshot",
    "options",
    "ranges",
    "presentation",
    "executor",
    "path_changes",
    "history",
    "history_columns",
    "history_store",
    "announced",
    "workdays",
    "netcheck",
    "plant_ids",
    "notices",
    "phone",
    "replaced",
    "decision_changes",
    "campus_topics",
    "campus_discovery",
    # The plant's objects, as a type: every module below reaches the others through it.
    "runtime",
    # The poller; activity (the logbook's events) and the actions' record; the command path (it
    # writes refusals to the activity); the decisions and what acts on them.
    "coordinator",
    "activity",
    "recorded",
    "commands",
    "decisions",
    "migration",
    "decision_follower",
    "faults",
    "proposals",
    "questions",
    "repairs",
    "status",
    "campus_state",
    "campus_commands",
    # Actions, the dashboard, and what runs once per plant beside the entities.
    "services",
    "manual_path",
    "dashboard",
    "interruptions",
    "gc_freeze",
    "campus",
    "diagnostics",
    # Entities.
    "entity",
    "prediction",
    "plant",
    "binary_sensor",
    "button",
    "select",
    "sensor",
    "switch",
    # Automations and the logbook, the config flow, and the entry points.
    "device_condition",
    "device_trigger",
    "logbook",
    "config_flow",
    "__init__",
)
"""The Home Assistant layer's modules, lowest first: a module imports only modules listed before
it (and the device layer and the engine). An import made only for type checking (under
``if TYPE_CHECKING:``) never runs and is not counted; one inside a function (a lazy import) runs
and is."""


def _in_type_checking(tree: ast.Module) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for statement in node.body
        for inner in ast.walk(statement)
    }


def _sibling_imports(path: Path, siblings: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module) of every run-time import of a sibling module, lazy ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _in_type_checking(tree)
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        if node.module:
            if (top := node.module.split(".")[0]) in siblings:
                yield node.lineno, top
        else:  # from . import a, b
            yield from ((node.lineno, a.name) for a in node.names if a.name in siblings)


def _ha_graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in INTEGRATION.glob("*.py")}
    return {m: {d for _, d in _sibling_imports(p, set(modules))} for m, p in modules.items()}


def test_every_ha_module_has_its_place() -> None:
    """A new module is placed in ``HA_LAYERS`` (and a removed one taken out)."""
    modules = {p.stem for p in INTEGRATION.glob("*.py")}
    assert len(HA_LAYERS) == len(set(HA_LAYERS))
    assert modules == set(HA_LAYERS), {
        "not placed": sorted(modules - set(HA_LAYERS)),
        "gone": sorted(set(HA_LAYERS) - modules),
    }


def test_ha_modules_import_only_lower_ones() -> None:
    """No module of the Home Assistant layer imports one placed above it."""
    rank = {m: i for i, m in enumerate(HA_LAYERS)}
    modules = {p.stem: p for p in INTEGRATION.glob("*.py")}
    offenders = [
        f"{name}.py:{line} imports {dep}"
        for name, path in sorted(modules.items())
        for line, dep in _sibling_imports(path, set(modules))
        if name in rank and dep in rank and rank[dep] >= rank[name]
    ]
    assert not offenders, offenders


def test_no_import_cycle() -> None:
    """No circle of run-time imports among the Home Assistant layer's modules (named when
    there is one)."""
    graph = _ha_graph()
    done: set[str] = set()

    def walk(module: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if module in path:
            return (*path[path.index(module) :], module)
        if module in done:
            return None
        for dep in sorted(graph[module]):
            if (cycle := walk(dep, (*path, module))) is not None:
                return cycle
        done.add(module)
        return None

    cycles = [c for m in sorted(graph) if (c := walk(m, ())) is not None]
    assert not cycles, " -> ".join(cycles[0])
