"""State machines written as tables, and the one step they all take.

A table maps ``(state, event)`` to the next state; a pair that is not in it is an
illegal move. The call rules of the router, the peer's calls and file transfers, and
the congestion controller's rate states all step through :func:`step`, so "what may
happen next" is always a lookup, never a chain of ifs. It lives in ``signaling`` because
that package is the base both the server and the peer import.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TypeVar

State = TypeVar("State", bound=Hashable)
Event = TypeVar("Event", bound=Hashable)


class IllegalMove(RuntimeError):
    """An event the table has no row for, in the state the machine is in."""

    def __init__(self, state: object, event: object) -> None:
        super().__init__(self.describe(state, event))
        self.state = state
        self.event = event

    @staticmethod
    def describe(state: object, event: object) -> str:
        """The one-line message; a machine's own subclass may name itself in it."""
        return f"{_shown(event)} is not possible while {_shown(state)}"


def step(
    table: Mapping[tuple[State, Event], State],
    state: State,
    event: Event,
    illegal: Callable[[State, Event], Exception] = IllegalMove,
) -> State:
    """The state after ``event``; ``illegal(state, event)`` is raised when no row allows it."""
    next_state = table.get((state, event))
    if next_state is None:
        raise illegal(state, event)
    return next_state


def from_each(
    states: Iterable[State], moves: Mapping[Event, State]
) -> dict[tuple[State, Event], State]:
    """Rows letting every one of ``states`` take each of ``moves`` (event -> next state):
    the "from any live state, hang-up ends it" rows of a table."""
    return {(state, event): target for state in states for event, target in moves.items()}


def _shown(value: object) -> str:
    return str(getattr(value, "value", value))
