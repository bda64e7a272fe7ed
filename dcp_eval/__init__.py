"""Evaluation harness: the simulator's physics and the integration's decision engine in one loop.

``python -m dcp_eval SCENARIO`` (``scripts/evaluate``) runs a scenario in accelerated time with the
engine polling the plant as Home Assistant would, executes its plans stage by stage, and scores
the outcome with the metrics of ``docs/scenario-format.md``.
"""
