"""Measurements behind ``scripts/benchmark`` (not tests: they report figures, they assert nothing)."""
