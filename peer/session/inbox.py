"""The one mailbox of the peer's conversation: typed messages kept in arrival order,
taken by whoever waits for the kind they want (the others stay, in order)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Inbox(Generic[Item]):
    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        self._items.append(item)
        self._arrived.set()

    def take_nowait(self, wanted: Callable[[Item], bool]) -> Item | None:
        """The oldest item ``wanted`` accepts, taken out; None when there is none."""
        for index, item in enumerate(self._items):
            if wanted(item):
                del self._items[index]
                return item
        return None

    async def peek(self, wanted: Callable[[Item], bool]) -> Item:
        """The oldest item ``wanted`` accepts, left in place; waits for one to arrive."""
        while True:
            for item in self._items:
                if wanted(item):
                    return item
            self._arrived.clear()
            await self._arrived.wait()

    async def take(self, wanted: Callable[[Item], bool]) -> Item:
        """The oldest item ``wanted`` accepts, taken out; waits for one to arrive."""
        item = await self.peek(wanted)
        self._items.remove(item)
        return item

    def discard(self, unwanted: Callable[[Item], bool]) -> None:
        """Drop every item ``unwanted`` accepts."""
        self._items = deque(item for item in self._items if not unwanted(item))
