"""Plant simulator: a data-center power plant driven by a scenario file.

The simulator is the fixture for tests, the default plant for development and (with the engine)
the evaluation harness. Home Assistant never imports it.
"""
