"""What can end ``webcam-peer``, and the exit code each gives."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    SERVER_UNREACHABLE = 3
    LOGIN_REFUSED = 4
    USER_OFFLINE = 5
    BUSY = 6
    DECLINED = 7
    MEDIA_DEVICE = 8
    CALL_FAILED = 9
    NO_RELAY = 10  # --relay-only, and the TURN server is missing, unreachable or refuses us


class PeerError(Exception):
    """An ending the user must be told about, with its exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
