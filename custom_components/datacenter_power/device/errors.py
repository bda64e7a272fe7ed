"""Typed errors of the device layer, so callers can tell "not answering" from "said no"."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "BadResponse",
    "DeviceError",
    "DeviceLayerError",
    "DeviceUnavailable",
    "ExceptionCode",
    "GatewayUnavailable",
]


class ExceptionCode(IntEnum):
    """Modbus exception codes (the ones this map uses, and the gateway ones)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_FAILED_TO_RESPOND = 0x0B


GATEWAY_CODES = frozenset(
    {ExceptionCode.GATEWAY_PATH_UNAVAILABLE, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND}
)


class DeviceLayerError(Exception):
    """Base class of every error the device layer raises."""

    def __init__(self, message: str, unit_id: int | None = None) -> None:
        super().__init__(message)
        self.unit_id = unit_id


class GatewayUnavailable(DeviceLayerError):
    """The Modbus TCP gateway cannot be reached (connection refused, closed, timed out)."""


class DeviceUnavailable(DeviceLayerError):
    """The device did not answer: a timeout, or the gateway reported it unreachable
    (exception 0x0A or 0x0B, then ``code`` holds it)."""

    def __init__(self, message: str, unit_id: int | None = None, code: int | None = None) -> None:
        super().__init__(message, unit_id)
        self.code = code


class DeviceError(DeviceLayerError):
    """The device answered with a Modbus exception (a refused command, a bad address...)."""

    def __init__(self, message: str, unit_id: int | None, code: int) -> None:
        super().__init__(message, unit_id)
        self.code = code

    @property
    def code_name(self) -> str:
        """The exception code's name, e.g. ``ILLEGAL_DATA_VALUE``."""
        try:
            return ExceptionCode(self.code).name
        except ValueError:
            return f"0x{self.code:02X}"


class BadResponse(DeviceLayerError):
    """The answer was short, malformed, or not what this register map describes."""
