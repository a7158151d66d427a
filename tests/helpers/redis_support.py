"""A real redis-server (Debian's, installed by scripts/setup.sh --test) for the tests,
on a free loopback port, with nothing written to disk."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from benchproc import redis_server_argv

from tests.helpers.support import Process, free_port


@dataclass
class RedisServer:
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(directory: Path, port: int | None = None) -> RedisServer:
    """A new redis-server; on ``port`` to stand in for one that was restarted."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: scripts/setup.sh --test installs it"
    port = port or free_port()
    process = Process(redis_server_argv(binary, port, directory))
    process.wait_for("Ready to accept connections")
    return RedisServer(process, port)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path)
    yield server
    server.process.stop()
