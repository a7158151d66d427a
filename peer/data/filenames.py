"""Names for received files: the other side's name made safe, and a free name chosen
without overwriting anything (docs/datachannels.md, "Where received files go"); and
the check that a file to send can be read.

``sanitise`` is pure. ``claim`` is the one step that touches the disk: it links the
finished temporary file to the first free candidate name, which fails atomically if
that name exists, so two transfers of the same name both survive.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

MAX_NAME_BYTES: Final = 200
FALLBACK_NAME: Final = "received-file"
# Characters Windows forbids in names; mapped so a file saved here can be copied there.
# ...and characters that look like a slash (U+2215 and kin): a name shown as ".. etc"
# must not read as a path.
_RESERVED: Final = re.compile('[<>:"|?*\u2215\u29f8\uff0f\u2044]')
# Names Windows gives to devices whatever the extension ("nul.txt" is NUL): a file
# saved here under one could not be copied there, and a tool that did would write
# to the device.
_DEVICE: Final = re.compile(r"(con|prn|aux|nul|com[1-9]|lpt[1-9])", re.IGNORECASE | re.ASCII)
# An extension worth keeping when the stem is shortened: short, no spaces.
_MAX_SUFFIX_BYTES: Final = 20
MAX_CANDIDATES: Final = 10_000


def sanitise(name: str) -> str:
    """A safe base name for a file the other side calls ``name``."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in base if c.isprintable() and c not in "\x00")
    base = _RESERVED.sub("_", base)
    base = base.lstrip(". ").rstrip(". ")
    if base.startswith("-"):
        base = "_" + base  # not an option to whatever command the name is typed into
    if _DEVICE.fullmatch(base.split(".")[0].rstrip(" ")):
        base = "_" + base
    base = _shorten(base, MAX_NAME_BYTES)
    return base or FALLBACK_NAME


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` bytes of UTF-8 (whole characters)."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def split_suffix(name: str) -> tuple[str, str]:
    """``report.tar.gz`` -> (``report.tar``, ``.gz``); no suffix for ``README``."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or " " in suffix or _utf8_len(suffix) + 1 > _MAX_SUFFIX_BYTES:
        return name, ""
    return stem, "." + suffix


def _shorten(name: str, limit: int) -> str:
    if _utf8_len(name) <= limit:
        return name
    stem, suffix = split_suffix(name)
    stem = _cut(stem, limit - _utf8_len(suffix)).rstrip(". ")
    return (stem + suffix) if stem else _cut(name, limit).rstrip(". ")


def candidates(name: str) -> Iterator[str]:
    """``a.bin``, ``a (1).bin``, ``a (2).bin``, ... each within the length bound."""
    yield name
    stem, suffix = split_suffix(name)
    for number in range(1, MAX_CANDIDATES):
        tag = f" ({number})"
        room = MAX_NAME_BYTES - _utf8_len(tag) - _utf8_len(suffix)
        yield _cut(stem, room) + tag + suffix


def claim(temporary: Path, directory: Path, name: str) -> Path:
    """Give ``temporary`` the first free name in ``directory``; the path it now has.

    Raises OSError if no name is free or the file system refuses.
    """
    for candidate in candidates(name):
        final = directory / candidate
        try:
            os.link(temporary, final)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if not _claim_without_links(temporary, final):
                continue
            return final
        temporary.unlink()
        return final
    raise OSError(errno.EEXIST, f"no free name for {name!r} in {directory}")


def _claim_without_links(temporary: Path, final: Path) -> bool:
    """For file systems without hard links: reserve the name with an exclusive create,
    then move the data over the empty placeholder."""
    try:
        fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    os.replace(temporary, final)
    return True


def unreadable_file(path: Path) -> str | None:
    """Why ``path`` cannot be sent, or None if it can."""
    if not path.exists():
        return f"{path}: no such file"
    if not path.is_file():
        return f"{path}: not a regular file"
    if not os.access(path, os.R_OK):
        return f"{path}: not readable (permission denied)"
    return None
