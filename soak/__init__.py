"""The soak: the integration inside Home Assistant against the simulator for many simulated hours,
with random faults and action calls, checking the safety invariants after every step.

``python -m soak --hours N --seed S`` (``scripts/soak``) runs ``soak/test_soak.py`` through
pytest (for Home Assistant's test harness) and prints the summary line last.
"""
