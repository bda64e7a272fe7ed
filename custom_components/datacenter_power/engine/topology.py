"""The plant's topology graph (sources -> ATS -> MPDU -> circuits) and the load arithmetic on it.

Every safety question the integration asks ("what would this element carry if circuit X moved?")
is answered here, once, for the planner, the policy and the command interlocks alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

CONTINUOUS_FRACTION = 0.8
"""Breakers and PDUs carry 80 % of their rating continuously (NEC 210.19/210.20)."""

type ElementKind = Literal["ats", "mpdu", "circuit"]
type Assignment = Mapping[str, str | None]
"""Circuit id -> the MPDU it draws from now (None when its output is off or it is dead)."""
type FloatArray = npt.NDArray[np.float64]


class TopologyError(ValueError):
    """The identification data does not form a valid plant (dangling id, duplicate, no path)."""


@dataclass(frozen=True, slots=True)
class AtsNode:
    """An automatic transfer switch."""

    id: str
    sources: tuple[str, ...]
    rating_a: float
    transfer_time_ms: float = 0.0
    rated_operations: int = 0


@dataclass(frozen=True, slots=True)
class MpduNode:
    """A modular PDU fed by one ATS."""

    id: str
    ats: str
    rating_a: float


@dataclass(frozen=True, slots=True)
class CircuitNode:
    """A critical circuit behind its SBM; ``paths[0]`` is the normal path."""

    id: str
    paths: tuple[str, ...]
    rating_a: float
    critical: bool = True

    @property
    def normal_path(self) -> str:
        """The MPDU the circuit is meant to draw from."""
        return self.paths[0]


@dataclass(frozen=True, slots=True)
class Topology:
    """The whole plant graph; build it with :meth:`build` so that it is validated."""

    ats: Mapping[str, AtsNode]
    mpdus: Mapping[str, MpduNode]
    circuits: Mapping[str, CircuitNode]
    _kinds: Mapping[str, ElementKind] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        ats: Iterable[AtsNode],
        mpdus: Iterable[MpduNode],
        circuits: Iterable[CircuitNode],
    ) -> Topology:
        """Validate and index the plant: unique ids, every reference resolved, every path real."""
        kinds: dict[str, ElementKind] = {}
        by_kind: dict[ElementKind, dict[str, AtsNode | MpduNode | CircuitNode]] = {
            "ats": {},
            "mpdu": {},
            "circuit": {},
        }
        for kind, nodes in (("ats", ats), ("mpdu", mpdus), ("circuit", circuits)):
            for node in nodes:
                if node.id in kinds:
                    raise TopologyError(f"duplicate id {node.id!r} ({kinds[node.id]} and {kind})")
                kinds[node.id] = kind  # type: ignore[assignment]
                by_kind[kind][node.id] = node  # type: ignore[index]
        ats_map = {k: v for k, v in by_kind["ats"].items() if isinstance(v, AtsNode)}
        mpdu_map = {k: v for k, v in by_kind["mpdu"].items() if isinstance(v, MpduNode)}
        circuit_map = {k: v for k, v in by_kind["circuit"].items() if isinstance(v, CircuitNode)}
        for m in mpdu_map.values():
            if m.ats not in ats_map:
                raise TopologyError(f"MPDU {m.id!r} is fed by unknown ATS {m.ats!r}")
        for c in circuit_map.values():
            if not c.paths:
                raise TopologyError(f"circuit {c.id!r} has no path")
            if len(set(c.paths)) != len(c.paths):
                raise TopologyError(f"circuit {c.id!r} lists a path twice: {c.paths}")
            for p in c.paths:
                if p not in mpdu_map:
                    raise TopologyError(f"circuit {c.id!r} names unknown MPDU {p!r} as a path")
        return cls(ats_map, mpdu_map, circuit_map, kinds)

    # -- lookups -----------------------------------------------------------------------------

    def kind(self, element_id: str) -> ElementKind | None:
        """``ats``, ``mpdu``, ``circuit`` or None for an unknown id."""
        return self._kinds.get(element_id)

    @property
    def elements(self) -> tuple[str, ...]:
        """ATS and MPDU ids: the elements with a continuous limit the planner guards."""
        return (*self.ats, *self.mpdus)

    def rating_a(self, element_id: str) -> float:
        """Rated current of an ATS, MPDU or circuit."""
        node = (
            self.ats.get(element_id) or self.mpdus.get(element_id) or self.circuits.get(element_id)
        )
        if node is None:
            raise KeyError(element_id)
        return node.rating_a

    def limit_a(self, element_id: str) -> float:
        """Continuous limit: 80 % of the rating."""
        return CONTINUOUS_FRACTION * self.rating_a(element_id)

    def ats_of(self, mpdu_id: str) -> str:
        """The ATS feeding an MPDU."""
        return self.mpdus[mpdu_id].ats

    def mpdus_of(self, ats_id: str) -> tuple[str, ...]:
        """The MPDUs an ATS feeds."""
        return tuple(m.id for m in self.mpdus.values() if m.ats == ats_id)

    def upstream(self, mpdu_id: str) -> tuple[str, str]:
        """The elements a circuit on this MPDU loads: ``(mpdu_id, ats_id)``."""
        return mpdu_id, self.mpdus[mpdu_id].ats

    def depends_on(self, path: str, element_id: str) -> bool:
        """Whether drawing from MPDU ``path`` goes through ``element_id`` (itself or its ATS)."""
        return element_id in self.upstream(path)

    def circuits_through(self, element_id: str, assignment: Assignment) -> list[str]:
        """Circuits currently drawing through an ATS or MPDU."""
        return [
            c
            for c, path in assignment.items()
            if path is not None and path in self.mpdus and self.depends_on(path, element_id)
        ]

    def normal_assignment(self) -> dict[str, str | None]:
        """Every circuit on its normal path."""
        return {c.id: c.normal_path for c in self.circuits.values()}

    # -- load arithmetic ---------------------------------------------------------------------

    def element_loads(
        self, assignment: Assignment, circuit_a: Mapping[str, float]
    ) -> dict[str, float]:
        """Current through every ATS and MPDU when circuits draw ``circuit_a`` as assigned."""
        loads = dict.fromkeys(self.elements, 0.0)
        for cid, path in assignment.items():
            if path is None or path not in self.mpdus:
                continue
            amps = float(circuit_a.get(cid, 0.0))
            loads[path] += amps
            loads[self.mpdus[path].ats] += amps
        return loads

    def element_load_profiles(
        self, assignment: Assignment, circuit_a: Mapping[str, FloatArray], n_times: int
    ) -> dict[str, FloatArray]:
        """:meth:`element_loads` at ``n_times`` instants at once: ``circuit_a`` maps a circuit to
        its current at each instant. The same sums in the same order, one array per element."""
        loads = {e: np.zeros(n_times) for e in self.elements}
        for cid, path in assignment.items():
            if path is None or path not in self.mpdus:
                continue
            amps = circuit_a.get(cid)
            if amps is None:
                continue
            loads[path] += amps
            loads[self.mpdus[path].ats] += amps
        return loads

    def overloads(self, assignment: Assignment, circuit_a: Mapping[str, float]) -> dict[str, float]:
        """Elements above their continuous limit, with the excess in amps."""
        loads = self.element_loads(assignment, circuit_a)
        return {
            e: round(load - self.limit_a(e), 6)
            for e, load in loads.items()
            if load > self.limit_a(e) + 1e-9
        }

    def utilization(
        self, assignment: Assignment, circuit_a: Mapping[str, float]
    ) -> dict[str, float]:
        """Current / rating for every ATS and MPDU."""
        loads = self.element_loads(assignment, circuit_a)
        return {e: load / self.rating_a(e) for e, load in loads.items()}
