"""Device layer: the Modbus register map, typed device models and an async client.

No Home Assistant imports here: this package could be published as its own library.

* ``registers`` - the register map as data (docs/register-map.md), shared with the simulator;
* ``models`` - ``DeviceIdentity`` (read once at discovery) and one reading type per device
  type (``AtsReading``, ``MpduReading``, ``SbmReading``, ``EnvReading``);
* ``client`` - ``PlantClient``: ``scan``, ``read_device``, ``read_all`` and the commands;
* ``errors`` - ``DeviceUnavailable`` (no answer), ``DeviceError`` (Modbus exception, ``.code``),
  ``BadResponse``, ``GatewayUnavailable``; all subclass ``DeviceLayerError``.
"""
