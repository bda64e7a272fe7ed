"""The decision engine: plant topology, forecasting, degradation scoring, planning and policy.

Pure Python on numpy/scipy: no Home Assistant, no I/O, deterministic for a given
input. The integration runs these objects in executor jobs; ``dcp_eval`` runs exactly the same
objects against the simulator in accelerated time. Times are Unix epoch seconds (floats)
everywhere, so daily and weekly seasonality line up with the wall clock.
"""
