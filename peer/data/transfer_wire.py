"""The control messages of a file transfer (docs/datachannels.md): parse and encode.

Pure. A message that does not parse raises :class:`WireError` with the cancel
reason the receiving side should answer with.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

MAX_CHUNK: Final = 65536
MAX_FILE_SIZE: Final = 2**53 - 1
# A header holds a name and a size; anything this long is not a header.
MAX_CONTROL_BYTES: Final = 16 * 1024
REASONS: Final = frozenset(
    {
        "cancelled",
        "rejected",
        "size-mismatch",
        "hash-mismatch",
        "bad-header",
        "too-large",
        "too-many",
        "disk-error",
        "protocol-error",
    }
)
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


class WireError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class FileHeader:
    name: str
    size: int


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class Cancel:
    reason: str


@dataclass(frozen=True)
class End:
    sha256: str


@dataclass(frozen=True)
class Done:
    sha256: str


Control = FileHeader | Accept | Cancel | End | Done


def parse_control(text: str) -> Control:
    if len(text) > MAX_CONTROL_BYTES:
        raise WireError("protocol-error", f"a control message of {len(text)} characters")
    try:
        data = json.loads(text)
    except ValueError:
        raise WireError("protocol-error", "a control message that is not JSON") from None
    if not isinstance(data, dict):
        raise WireError("protocol-error", "a control message that is not an object")
    kind = data.get("type")
    if kind == "file":
        return _header(data)
    if kind == "accept":
        return Accept()
    if kind == "cancel":
        reason = data.get("reason")
        # An unknown reason still cancels: the transfer is over either way.
        return Cancel(reason if isinstance(reason, str) and reason in REASONS else "cancelled")
    if kind in ("end", "done"):
        digest = data.get("sha256")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
            raise WireError("protocol-error", f"{kind} without a SHA-256 digest")
        return End(digest.lower()) if kind == "end" else Done(digest.lower())
    raise WireError("protocol-error", f"an unknown control message {str(kind)[:40]!r}")


def _header(data: dict[str, object]) -> FileHeader:
    name, size = data.get("name"), data.get("size")
    if not isinstance(name, str):
        raise WireError("bad-header", "a file header without a name")
    # bool is an int in Python; JSON true is not a size.
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_SIZE:
        raise WireError("bad-header", f"a file header with size {size!r}")
    return FileHeader(name, size)


def encode_control(message: Control) -> str:
    if isinstance(message, FileHeader):
        data: dict[str, object] = {"type": "file", "name": message.name, "size": message.size}
    elif isinstance(message, Accept):
        data = {"type": "accept"}
    elif isinstance(message, Cancel):
        data = {"type": "cancel", "reason": message.reason}
    elif isinstance(message, End):
        data = {"type": "end", "sha256": message.sha256}
    else:
        data = {"type": "done", "sha256": message.sha256}
    return json.dumps(data, ensure_ascii=False)
