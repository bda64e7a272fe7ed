"""Campus tooling: the MQTT broker that federates halls, for tests and scripts.

``acl`` writes each hall's and the campus's broker users and access rules (the same files serve a
production Mosquitto); ``broker`` starts and stops a real Mosquitto on loopback. Home Assistant
never imports this package; the hall side is ``custom_components/datacenter_power/campus*.py``.
"""
