"""What every network-namespace lab here shares: namespaces named after the test process
that made them, commands and processes run inside them, and a teardown that leaves
nothing behind (tests/helpers/nat_support.py, tests/helpers/shaped_link.py,
tests/helpers/shaped_link_support.py).

A lab's namespaces are named ``<prefix><pid>-<n>-<role>``: deleting them removes every
interface, qdisc and iptables rule with them, nothing is touched in the machine's own
namespace, and :func:`remove_stale` finds those of a test process that no longer exists.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

from tests.helpers.support import Process

logger = logging.getLogger(__name__)

_lab_numbers = itertools.count(1)


def run(argv: Sequence[str]) -> None:
    """Run a set-up command; its stderr in the error when it fails."""
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}")


def ip(*args: str) -> None:
    run(["ip", *args])


def namespaces() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_namespace(name: str) -> None:
    """Stop what still runs inside ``name`` (processes our tests started), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    for pid in (int(p) for p in pids.stdout.split()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def remove_stale(prefix: str) -> list[str]:
    """Delete the ``prefix`` namespaces whose creating process is gone; their names."""
    stale = []
    for name in namespaces():
        if not name.startswith(prefix):
            continue
        owner = name[len(prefix) :].split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            delete_namespace(name)
            stale.append(name)
    if stale:
        logger.warning("removed namespaces left by an earlier run: %s", ", ".join(stale))
    return stale


@dataclass(kw_only=True)
class NamespaceLab:
    """Namespaces, the processes started in them, and their teardown.

    A lab sets ``PREFIX`` and builds itself in ``_build`` with :meth:`_add_namespace`."""

    PREFIX: ClassVar[str]
    lab_id: str = ""
    created: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.lab_id:
            self.lab_id = f"{self.PREFIX}{os.getpid()}-{next(_lab_numbers)}"

    def ns(self, role: str) -> str:
        return f"{self.lab_id}-{role}"

    def build(self) -> Self:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        raise NotImplementedError

    def _add_namespace(self, role: str) -> str:
        name = self.ns(role)
        ip("netns", "add", name)
        self.created.append(name)
        self.sh(role, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ip("-n", name, "link", "set", "lo", "up")
        return name

    # ---- running things inside -----------------------------------------------------------
    def argv(self, role: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(role), *argv]

    def sh(self, role: str, *argv: str) -> None:
        run(self.argv(role, argv))

    def start(self, role: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Process:
        process = Process(self.argv(role, argv), env=env)
        self.processes.append(process)
        return process

    # ---- tearing down ---------------------------------------------------------------------
    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        for name in reversed(self.created):
            delete_namespace(name)
        left = [name for name in namespaces() if name.startswith(self.lab_id + "-")]
        self.created.clear()
        if left:
            raise RuntimeError(f"namespaces not removed: {left}")

    def __enter__(self) -> Self:
        return self.build()

    def __exit__(self, *exc: object) -> None:
        self.close()
