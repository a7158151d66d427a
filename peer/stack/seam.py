"""What the peer's replacements inside aiortc (the receive path of peer/stack/jitter.py, the
SCTP association of peer/stack/sctp_speed.py) check before they go in.

Both reach into aiortc's private parts, so each names the aiortc versions it was
checked against and the source lines it relies on; a changed aiortc is refused with
a message naming what moved and the flag that keeps aiortc's own code instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import aiortc

SUPPORTED_AIORTC: Final = ("1.16",)  # keep in step with pyproject's aiortc pin


class AiortcChanged(RuntimeError):
    """aiortc no longer looks the way one of the peer's replacements relies on."""


@dataclass(frozen=True)
class Seam:
    purpose: str  # "the fast receive path"
    flag: str  # "--jitter": its "stock" value keeps aiortc's own code
    module: str  # where the replacement lives, to update

    def _remedy(self) -> str:
        return f"run with {self.flag} stock or update {self.module}"

    def check_version(self) -> str:
        """The installed aiortc's version, or AiortcChanged if it was never checked."""
        version = str(getattr(aiortc, "__version__", "unknown"))
        if not any(version == v or version.startswith(v + ".") for v in SUPPORTED_AIORTC):
            raise AiortcChanged(
                f"aiortc {version} is not a version {self.purpose} was checked against "
                f"({', '.join(SUPPORTED_AIORTC)}.x); {self._remedy()}"
            )
        return version

    def missing_lines(self, cls: type, expected: Mapping[str, Mapping[str, str]]) -> list[str]:
        """``"method what"`` for each expected source line no longer in ``cls.method``."""
        missing = []
        for method, expectations in expected.items():
            try:
                source = inspect.getsource(getattr(cls, method))
            except (AttributeError, OSError, TypeError) as exc:
                raise AiortcChanged(f"cannot read {cls.__name__}.{method}: {exc}") from exc
            missing += [
                f"{method} {what}" for what, line in expectations.items() if line not in source
            ]
        return missing

    def refuse_if(self, version: str, cls: type, missing: Iterable[str]) -> None:
        missing = list(missing)
        if missing:
            raise AiortcChanged(
                f"aiortc {version} changed: {cls.__name__} no longer {'; '.join(missing)}. "
                f"{self._remedy().capitalize()}"
            )
