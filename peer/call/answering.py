"""Whether an incoming call or file is taken, asked about or declined (docs/security.md).

Pure. A stranger on the same server must not get the camera and microphone of a
person who did not say yes: someone at a terminal is asked; bots and scripts say
``--auto-answer`` (or name their callers with ``--answer-from``); with nobody to ask
and neither flag, calls are declined. Files likewise: only ``--accept-files-from``
takes them unattended (``--auto-answer`` does not: answering a call is not agreeing
to have files written to one's disk).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import Final

# How long the person has to say y; the caller's --answer-timeout is 30 s by default.
ASK_WITHIN: Final = 30.0


class Answer(Enum):
    ANSWER = "answer"
    ASK = "ask"
    DECLINE = "decline"


@dataclass(frozen=True)
class AnswerPolicy:
    auto_answer: bool = False
    answer_from: frozenset[str] = frozenset()
    ask: bool = False  # ask on standard input even when it is not a terminal

    @classmethod
    def of(cls, auto_answer: bool, answer_from: Collection[str], ask: bool) -> AnswerPolicy:
        return cls(auto_answer, frozenset(answer_from), ask)

    def decide(self, caller: str, at_a_terminal: bool) -> Answer:
        if caller in self.answer_from:
            return Answer.ANSWER
        if self.ask:
            return Answer.ASK
        if self.auto_answer:
            return Answer.ANSWER
        return Answer.ASK if at_a_terminal else Answer.DECLINE


@dataclass(frozen=True)
class FilePolicy:
    accept_from: frozenset[str] = frozenset()
    ask: bool = False  # ask on standard input even when it is not a terminal

    @classmethod
    def of(cls, accept_from: Collection[str], ask: bool = False) -> FilePolicy:
        return cls(frozenset(accept_from), ask)

    def decide(self, sender: str, at_a_terminal: bool) -> Answer:
        if sender in self.accept_from:
            return Answer.ANSWER
        return Answer.ASK if self.ask or at_a_terminal else Answer.DECLINE
