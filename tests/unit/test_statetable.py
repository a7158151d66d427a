"""signaling/statetable.py: a table's step, and the refusal of a move it has no row for."""

from __future__ import annotations

from enum import Enum

import pytest

from signaling.statetable import IllegalMove, from_each, step


class Light(Enum):
    OFF = "off"
    ON = "on"


TABLE = {(Light.OFF, "press"): Light.ON, (Light.ON, "press"): Light.OFF}


def test_a_row_gives_the_next_state() -> None:
    assert step(TABLE, Light.OFF, "press") is Light.ON
    assert step(TABLE, Light.ON, "press") is Light.OFF


def test_a_missing_row_is_refused_with_both_names() -> None:
    with pytest.raises(IllegalMove, match="unplug is not possible while off") as caught:
        step(TABLE, Light.OFF, "unplug")
    assert caught.value.state is Light.OFF
    assert caught.value.event == "unplug"


def test_the_caller_chooses_the_refusal() -> None:
    class Jammed(RuntimeError):
        pass

    with pytest.raises(Jammed):
        step(TABLE, Light.ON, "unplug", lambda state, event: Jammed(f"{event}/{state}"))


def test_from_each_gives_every_state_the_same_moves() -> None:
    rows = from_each([Light.OFF, Light.ON], {"unplug": Light.OFF, "fuse": Light.OFF})
    assert rows == {
        (Light.OFF, "unplug"): Light.OFF,
        (Light.OFF, "fuse"): Light.OFF,
        (Light.ON, "unplug"): Light.OFF,
        (Light.ON, "fuse"): Light.OFF,
    }
    assert step({**TABLE, **rows}, Light.ON, "unplug") is Light.OFF
