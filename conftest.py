"""Root conftest: import the project's custom_components before the test harness's own package.

pytest-homeassistant-custom-component ships a ``custom_components`` package in its test config
directory; importing ours first makes Home Assistant find ``datacenter_power``.
"""

import custom_components.datacenter_power  # noqa: F401
