"""What a line typed during a call means: chat, or a command (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from peer.call.av_commands import AV_HELP, AvCommand, parse_av_command

HELP = f"""\
during a call:
  a line of text      send it as chat
  /send PATH          send a file
  /cancel [N]         cancel transfer N (all transfers without N)
  /accept N           take the file offered as transfer N
  /reject N           refuse the file offered as transfer N
  /help               this help
{AV_HELP}
  //text              send a chat line that starts with '/'"""


@dataclass(frozen=True)
class ChatCommand:
    text: str


@dataclass(frozen=True)
class SendCommand:
    path: Path


@dataclass(frozen=True)
class CancelCommand:
    number: int | None  # None: every transfer


@dataclass(frozen=True)
class AnswerOfferCommand:
    """/accept N (accept True) or /reject N."""

    number: int
    accept: bool


@dataclass(frozen=True)
class HelpCommand:
    pass


@dataclass(frozen=True)
class BadCommand:
    why: str


Command = (
    ChatCommand
    | SendCommand
    | CancelCommand
    | AnswerOfferCommand
    | HelpCommand
    | BadCommand
    | AvCommand
)


def parse_command(line: str) -> Command | None:
    """None for an empty line, which sends nothing."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if line.startswith("//"):
        return ChatCommand(line[1:])
    if not line.startswith("/"):
        return ChatCommand(line)
    name, _, argument = line[1:].partition(" ")
    argument = argument.strip()
    if name == "send":
        if not argument:
            return BadCommand("usage: /send PATH")
        return SendCommand(Path(argument).expanduser())
    if name == "cancel":
        if not argument:
            return CancelCommand(None)
        if not argument.isdigit():
            return BadCommand(f"usage: /cancel [N]; {argument!r} is not a transfer number")
        return CancelCommand(int(argument))
    if name in ("accept", "reject"):
        if not argument.isdigit():
            return BadCommand(f"usage: /{name} N, N the number of the file offered")
        return AnswerOfferCommand(int(argument), accept=name == "accept")
    if name == "help":
        return HelpCommand()
    if (media := parse_av_command(name, argument)) is not None:
        return media
    return BadCommand(f"unknown command /{name} (/help lists them; //{name} sends it as chat)")
