"""The one way the peer keeps the tasks it starts: every task is held until it ends,
a crash is logged with the task's name, and whoever owns them stops them all at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class TaskSupervisor:
    """The tasks of one owner (a call's media, a call's transfers, the peer itself)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=f"{self.owner}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def others_than(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether a task other than ``task`` is still running."""
        return bool(self._tasks - {task})

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s stopped: %r", task.get_name(), task.exception())

    async def settle(self, within: float) -> None:
        """Let the running tasks finish on their own, for at most ``within`` seconds."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    async def stop(self) -> None:
        """Cancel every task and wait until each has ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


async def logged(coroutine: Coroutine[Any, Any, Any], name: str) -> None:
    """``coroutine``, its crash logged as a supervised task's would be, not raised (for
    an ``asyncio.TaskGroup``, where one crash would cancel its siblings)."""
    try:
        await coroutine
    except Exception as exc:
        logger.error("%s stopped: %r", name, exc)
