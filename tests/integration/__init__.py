"""Tests of the Home Assistant layer against the simulator served over Modbus TCP."""
