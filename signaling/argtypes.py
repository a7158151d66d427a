"""argparse types and helpers shared by ``signaling-server`` and ``webcam-peer``.

A type turns one command-line string into a value or raises ``ArgumentTypeError`` with
the one-line reason argparse prints under the usage. Standard library only: the server
imports this without the peer's libraries, and the peer already depends on signaling.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from .protocol import is_valid_username

N = TypeVar("N", int, float)

_UNITS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def package_version() -> str:
    """What ``--version`` prints after the program's name."""
    try:
        return importlib.metadata.version("webcam-peer")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def number(
    kind: Callable[[str], N], what: str = "", low: float | None = None, high: float | None = None
) -> Callable[[str], N]:
    """A number of ``kind`` (int or float) between ``low`` and ``high`` (either open);
    ``what`` names it in the error ("fps '0' must be between 1 and 120")."""
    prefix = f"{what} " if what else ""
    whole = "whole " if kind is int else ""

    def convert(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{prefix}{text!r} is not a {whole}number") from None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is not None:
                bounds = f"must be between {low} and {high}"
            else:
                bounds = "must not be negative" if low == 0 else f"must be at least {low}"
            raise argparse.ArgumentTypeError(f"{prefix}{text!r} {bounds}")
        return value

    convert.__name__ = what or getattr(kind, "__name__", "number")
    return convert


def non_negative(kind: Callable[[str], N]) -> Callable[[str], N]:
    return number(kind, low=0)


port = number(int, "port", 0, 65535)


def username(text: str) -> str:
    if not is_valid_username(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid username (1-32 letters, digits, '_', '.', '-')"
        )
    return text


def frame_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT of a video frame: even, between 16x16 and 3840x2160."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like 640x480")
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= 3840 and 16 <= height <= 2160) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(
            f"size {text!r} must be even and between 16x16 and 3840x2160"
        )
    return width, height


def byte_size(text: str) -> int:
    """Bytes, with an optional binary unit: 1048576, 500M, 2G, 2GiB."""
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:i?B)?", text.strip(), flags=re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like 1048576, 500M or 2G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def add_secret_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *,
    what: str,
    help: str,
    metavar: str | None = None,
    env: str | None = None,
    file_env: str | None = None,
) -> None:
    """``--FLAG SECRET`` and ``--FLAG-file FILE`` (its first line), each defaulting to its
    environment variable when named; :func:`secret_from_file` reads the pair back.
    ``what`` names the secret in the file flag's help ("the token")."""
    parser.add_argument(
        f"--{flag}", metavar=metavar, default=os.environ.get(env) if env else None, help=help
    )
    parser.add_argument(
        f"--{flag}-file",
        type=Path,
        default=os.environ.get(file_env) if file_env else None,
        metavar="FILE",
        help=f"read {what} from FILE, its first line" + (f" (env {file_env})" if file_env else ""),
    )


def secret_from_file(
    parser: argparse.ArgumentParser,
    flag: str,
    given: str | None,
    path: Path | None,
    *,
    from_environment: str | None = None,
) -> str | None:
    """The secret of ``--FLAG``, or the first line of ``--FLAG-file``; both given is a
    usage error, unless ``given`` is only the environment's value (``from_environment``),
    which the file overrides."""
    if path is None:
        return given
    if given is not None and given != from_environment:
        parser.error(f"--{flag} and --{flag}-file: give one of them")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        parser.error(f"cannot read --{flag}-file {path}: {exc}")
    if not lines or not lines[0].strip():
        parser.error(f"--{flag}-file {path} is empty")
    return lines[0].strip()
