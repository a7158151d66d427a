"""PyAV's wheel carries its own libasound, which looks for its configuration under the
directory it was built in; point it at the system's, so ``default`` means what it
means to every other program on the machine."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_CONFIG_DIR = Path("/usr/share/alsa")


def use_system_alsa_config() -> None:
    config = SYSTEM_CONFIG_DIR / "alsa.conf"
    if "ALSA_CONFIG_PATH" in os.environ or not config.is_file():
        return
    os.environ["ALSA_CONFIG_PATH"] = str(config)
    os.environ.setdefault("ALSA_CONFIG_DIR", str(SYSTEM_CONFIG_DIR))
