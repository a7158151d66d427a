"""PyAV's wheel carries its own libasound, which looks for its configuration and its
plugins under the directory it was built in; point it at the system's, so ``default``
means what it means to every other program on the machine. (Without the plugin
directory, a system whose ALSA configuration loads a plugin, e.g. PulseAudio's
hook, leaves the bundled library with no usable configuration at all.)"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_CONFIG_DIR = Path("/usr/share/alsa")
SYSTEM_PLUGIN_DIRS = ("/usr/lib/*/alsa-lib", "/usr/lib64/alsa-lib", "/usr/lib/alsa-lib")


def use_system_alsa_config() -> None:
    config = SYSTEM_CONFIG_DIR / "alsa.conf"
    if "ALSA_CONFIG_PATH" in os.environ or not config.is_file():
        return
    os.environ["ALSA_CONFIG_PATH"] = str(config)
    os.environ.setdefault("ALSA_CONFIG_DIR", str(SYSTEM_CONFIG_DIR))
    plugins = next(
        (found for pattern in SYSTEM_PLUGIN_DIRS for found in sorted(Path("/").glob(pattern[1:]))),
        None,
    )
    if plugins is not None and plugins.is_dir():
        os.environ.setdefault("ALSA_PLUGIN_DIR", str(plugins))
