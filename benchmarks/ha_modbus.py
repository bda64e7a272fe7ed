"""The baseline: Home Assistant's own ``modbus`` integration, configured in YAML as a user would
configure the simulated plant, measured in the same harness as the integration.

One hub per gateway and one entity per value of every device, with the registers the
integration reads: a ``sensor`` per measurement (per element of an array, scaled, with its
unit), a ``sensor`` per status/alarm word and a ``template`` binary sensor per bit of it
(``modbus`` binary sensors on a register read only its bit 0), and a ``switch`` per state coil
(ATS inhibit, MPDU and SBM output), verified by reading the coil back. Every ``modbus`` entity
is one request a poll; the timed refreshes are the only polls (``scan_interval: 0``;
``homeassistant.update_entity`` polls them, the platforms one entity at a time as their own
timers do, ``PARALLEL_UPDATES = 1``, all through the hub's lock on one connection).
Requests are counted where they arrive, at the simulator.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from typing import Any

from custom_components.datacenter_power.device.client import PlantClient
from custom_components.datacenter_power.device.models import DeviceIdentity
from custom_components.datacenter_power.device.registers import MAPS, Field, Kind

from .hall import hall_spec
from .scale import COMMAND_FAILURES, _commands_during, _ms, home_assistant, simulator

SOURCE = "homeassistant.components.modbus"

_DATA_TYPES = {
    Kind.U16: "uint16",
    Kind.S16: "int16",
    Kind.U32: "uint32",
    Kind.S32: "int32",
    Kind.BITS: "uint16",
}
_UNITS: dict[str, tuple[str, str | None]] = {
    "A": ("A", "current"),
    "V": ("V", "voltage"),
    "kW": ("kW", "power"),
    "kWh": ("kWh", "energy"),
    "degC": ("°C", "temperature"),
    "Hz": ("Hz", "frequency"),
    "ms": ("ms", "duration"),
    "s": ("s", "duration"),
    "%": ("%", None),
    "deg": ("°", None),
}


def _sensor(d: DeviceIdentity, f: Field, name: str, address: int) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "name": f"{d.plant_id} {name}",
        "unique_id": f"{d.plant_id}_{name}",
        "address": address,
        "input_type": "input",
        "device_address": d.unit_id,
        "data_type": _DATA_TYPES[f.kind],
        "scan_interval": 0,  # the timed refreshes are the only polls
    }
    if f.scale != 1:
        conf["scale"] = f.scale
        conf["precision"] = max(0, -math.floor(math.log10(f.scale) + 1e-9))
    if f.unit:
        unit, device_class = _UNITS[f.unit]
        if name.startswith("humidity"):
            device_class = "humidity"
        conf["unit_of_measurement"] = unit
        if device_class:
            conf["device_class"] = device_class
        conf["state_class"] = "total_increasing" if unit == "kWh" else "measurement"
    return conf


def _bits(d: DeviceIdentity, f: Field) -> list[tuple[str, int]]:
    """(value name, mask) of each bit of a status/alarm word the device uses."""
    if f.bits:
        return [(name, 1 << i) for i, name in enumerate(f.bits)]
    return [(f"{f.name}_{i}", 1 << i) for i in range(len(d.upstream))]


def modbus_config(ports: list[int], gateways: list[list[DeviceIdentity]]) -> dict[str, Any]:
    """The ``modbus:`` and ``template:`` configuration of the plant (one hub per gateway)."""
    from homeassistant.util import slugify

    hubs: list[dict[str, Any]] = []
    templates: list[dict[str, Any]] = []
    for gateway, (port, devices) in enumerate(zip(ports, gateways, strict=True), 1):
        sensors: list[dict[str, Any]] = []
        switches: list[dict[str, Any]] = []
        for d in devices:
            dmap = MAPS[d.device_type]
            for f in dmap.measurements.fields:
                if f.kind is Kind.BITS:
                    sensors.append(_sensor(d, f, f.name, f.address))
                    word = f"sensor.{slugify(sensors[-1]['name'])}"
                    templates += [
                        {
                            "name": f"{d.plant_id} {bit}",
                            "unique_id": f"{d.plant_id}_{bit}",
                            "state": f"{{{{ states('{word}') | int(0) | bitwise_and({mask}) > 0 }}}}",
                            "availability": f"{{{{ has_value('{word}') }}}}",
                        }
                        for bit, mask in _bits(d, f)
                    ]
                    continue
                n = len(d.upstream) if f.count > 1 else 1
                sensors += [
                    _sensor(
                        d,
                        f,
                        f"{f.name}_{i}" if f.count > 1 else f.name,
                        f.address + i * f.element_words,
                    )
                    for i in range(n)
                ]
            switches += [
                {
                    "name": f"{d.plant_id} {coil.name}",
                    "unique_id": f"{d.plant_id}_{coil.name}_switch",
                    "address": coil.address,
                    "write_type": "coil",
                    "device_address": d.unit_id,
                    "scan_interval": 0,
                    "verify": {},  # read the coil back, after a command and at each poll
                }
                for coil in dmap.coils
                if not coil.trigger
            ]
        hub: dict[str, Any] = {
            "name": f"gateway{gateway}",
            "type": "tcp",
            "host": "127.0.0.1",
            "port": port,
            "timeout": 5,
            "sensors": sensors,
        }
        if switches:
            hub["switches"] = switches
        hubs.append(hub)
    return {"modbus": hubs, "template": [{"binary_sensor": templates}]}


async def _first_values(hass: Any, sensors: list[str], timeout_s: float = 300.0) -> None:
    """Until every ``modbus`` entity has been read once (each reads 0.1 s after it is added,
    in the background, once its hub is connected)."""
    deadline = time.monotonic() + timeout_s
    while any(hass.states.get(e).state == "unknown" for e in sensors):
        if time.monotonic() > deadline:
            raise TimeoutError("modbus sensors still unknown after setup")
        await asyncio.sleep(0.1)
    await hass.async_block_till_done(wait_background_tasks=True)


async def _measure(n_circuits: int, rounds: int, commands: int) -> dict[str, Any]:
    from homeassistant.helpers import entity_registry as er
    from homeassistant.setup import async_setup_component

    spec = hall_spec(n_circuits)
    async with simulator(spec) as sim:
        gateways = []
        for port in sim.ports:
            async with PlantClient("127.0.0.1", port) as client:
                gateways.append(await client.scan())
        config = modbus_config(sim.ports, gateways)
        async with home_assistant() as hass:
            assert await async_setup_component(hass, "homeassistant", {})
            setup_started = time.perf_counter()
            assert await async_setup_component(hass, "modbus", {"modbus": config["modbus"]})
            assert await async_setup_component(hass, "template", {"template": config["template"]})
            await hass.async_block_till_done()
            registry = er.async_get(hass)
            polled = sorted(
                e.entity_id for e in registry.entities.values() if e.platform == "modbus"
            )
            sensors = [e for e in polled if e.startswith("sensor.")]
            switches = [e for e in polled if e.startswith("switch.")]
            await _first_values(hass, sensors)
            setup_s = time.perf_counter() - setup_started

            async def refresh() -> None:
                await hass.services.async_call(
                    "homeassistant", "update_entity", {"entity_id": polled}, blocking=True
                )

            await refresh()
            before = await sim.requests()
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                await refresh()
                times.append(time.perf_counter() - started)
            per_refresh = (await sim.requests() - before) / rounds
            refresh_s = statistics.median(times)
            inhibit = registry.async_get_entity_id("switch", "modbus", "ats1_inhibit_switch")
            assert inhibit is not None
            cycle = [
                ("switch", "turn_on", {"entity_id": inhibit}),
                ("switch", "turn_off", {"entity_id": inhibit}),
            ]
            COMMAND_FAILURES.clear()
            latencies = await _commands_during(hass, refresh, refresh_s, cycle, commands)
            want = "on" if cycle[(commands - 1) % len(cycle)][1] == "turn_on" else "off"
            # Read back from the device (verify), not assumed.
            reflected = hass.states.get(inhibit).state == want
            unavailable = sum(hass.states.get(e).state == "unavailable" for e in polled)
            entities = len(hass.states.async_entity_ids())
            templates = len(hass.states.async_entity_ids("binary_sensor"))
    return {
        "source": SOURCE,
        "devices": sum(map(len, gateways)),
        "hubs": len(config["modbus"]),
        "entities": entities,
        "modbus_entities": len(polled),
        "modbus_switches": len(switches),
        "template_binary_sensors": templates,
        "unavailable_after": unavailable,
        "setup_s": round(setup_s, 1),
        "requests_per_refresh": per_refresh,
        "refresh_ms": round(refresh_s * 1000, 1),
        "command_latency_ms": _ms(latencies),
        "command_failures": len(COMMAND_FAILURES),
        "command_reflected": reflected,
    }


def baseline(n_circuits: int, rounds: int, commands: int) -> dict[str, Any]:
    """Home Assistant's ``modbus`` on the hall: entities, requests per refresh (counted at the
    simulator), refresh time, and command latency during refreshes."""
    return asyncio.run(_measure(n_circuits, rounds, commands))
