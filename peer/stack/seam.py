"""The one format every reach into aiortc, aioice or asyncio internals is checked in.

A :class:`Seam` names what it is for, the flag that keeps the library's own code, and
the module to update. Before anything is patched (or a private attribute read), its
:meth:`Seam.check` verifies:

- the installed library versions are ones the seam was checked against
  (:data:`SUPPORTED`, kept in step with pyproject's pins);
- the library functions it wraps or calls still hold the source lines it relies on;
- the attributes it reads or replaces still exist;
- the library functions a fork was copied from are still, line for line, the ones
  it was copied from (their normalised source's digest).

A changed library is refused in one line that names what moved and the flag that
keeps the library's own code. :class:`Undo` and :func:`replace` make every patch
reversible, so tests (and a second installation) put the library back as it was.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import io
import textwrap
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

# Versions each seam was checked against: keep in step with pyproject's pins.
SUPPORTED: Final[Mapping[str, tuple[str, ...]]] = {"aiortc": ("1.16",), "aioice": ("0.13",)}
_MISSING: Final = object()
_LAYOUT: Final = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER})
# Blocks and statements kept, whatever the indentation's width.
_BLOCKS: Final = {tokenize.INDENT: "{", tokenize.DEDENT: "}", tokenize.NEWLINE: ";"}


class StackChanged(RuntimeError):
    """A library no longer looks the way one of the peer's seams into it relies on."""


AiortcChanged = StackChanged  # the name callers outside peer/stack/ know


def installed_version(library: str) -> str:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def normalised_source(function: Callable[..., Any]) -> str:
    """``function``'s code token by token: comments, docstring and blank lines left out,
    blocks and statements kept, so only a change to the code itself changes it.
    (Tokens, unlike an AST dump, read the same on every Python version, f-strings aside.)"""
    source = textwrap.dedent(inspect.getsource(function))
    definition = ast.parse(source).body[0]
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef)
    first = definition.body[0]
    docstring = (
        (first.lineno, first.col_offset)
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        else None
    )
    kept = [
        _BLOCKS.get(token.type, token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type not in _LAYOUT and token.start != docstring
    ]
    return " ".join(kept)


def source_digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(normalised_source(function).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Lines:
    """Source lines a library function must still hold: what it does -> the line."""

    owner: Any  # a class or a module
    name: str
    lines: Mapping[str, str]


@dataclass(frozen=True)
class Fork:
    """A library function the seam carries a modified copy of, and the digest of the
    original it was copied from (:func:`source_digest`)."""

    owner: type
    name: str
    digest: str


@dataclass(frozen=True)
class Seam:
    purpose: str  # "the fast receive path"
    way_out: str  # "run with --receive-path stock": what keeps the library's own code
    module: str  # where the seam lives, to update
    libraries: tuple[str, ...] = ("aiortc",)
    lines: tuple[Lines, ...] = ()
    present: tuple[tuple[Any, str], ...] = ()  # (owner, attribute) that must exist
    forks: tuple[Fork, ...] = ()
    extra: tuple[Callable[[], list[str]], ...] = ()  # more checks: each lists problems

    def refusal(self, problem: str) -> StackChanged:
        """The one line a user sees: what changed, and the way out."""
        return StackChanged(
            f"{problem}; {self.purpose} cannot go in: {self.way_out}, or update {self.module}"
        )

    def check(self) -> None:
        """Raise :class:`StackChanged` unless every library looks as the seam expects."""
        for library in self.libraries:
            version = installed_version(library)
            supported = SUPPORTED.get(library, ())
            if not any(version == v or version.startswith(v + ".") for v in supported):
                raise self.refusal(
                    f"{library} {version} is not a version it was checked against "
                    f"({', '.join(v + '.x' for v in supported)})"
                )
        problems = self.problems()
        if problems:
            versions = ", ".join(f"{lib} {installed_version(lib)}" for lib in self.libraries)
            raise self.refusal(f"{versions} changed: {'; '.join(problems)}")

    def problems(self) -> list[str]:
        problems = [
            f"{_name(owner)}.{name} is gone"
            for owner, name in self.present
            if getattr(owner, name, _MISSING) is _MISSING
        ]
        for expected in self.lines:
            where = f"{_name(expected.owner)}.{expected.name}"
            try:
                source = inspect.getsource(getattr(expected.owner, expected.name))
            except (AttributeError, OSError, TypeError):
                problems.append(f"{where} is gone")
                continue
            problems += [
                f"{where} no longer {what}"
                for what, line in expected.lines.items()
                if line not in source
            ]
        for fork in self.forks:
            where = f"{_name(fork.owner)}.{fork.name}"
            try:
                digest = source_digest(getattr(fork.owner, fork.name))
            except (AttributeError, OSError, TypeError, SyntaxError):
                problems.append(f"{where} is gone")
                continue
            if digest != fork.digest:
                problems.append(f"{where} is not the code our copy was made from")
        for check in self.extra:
            problems += check()
        return problems


def _name(owner: Any) -> str:
    return str(getattr(owner, "__qualname__", None) or getattr(owner, "__name__", owner))


class Undo:
    """Steps that put the libraries back, run last-first; calling it twice does nothing."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def __call__(self) -> None:
        while self._steps:
            self._steps.pop()()


def replace(owner: Any, name: str, new: Any, undo: Undo) -> Any:
    """Set ``owner.name`` to ``new``; ``undo`` restores what was there (or deletes it, if
    ``owner`` only inherited it). Returns the value that was in effect."""
    own = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
    previous = getattr(owner, name, None)
    setattr(owner, name, new)

    def restore() -> None:
        if own is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, own)

    undo.add(restore)
    return previous
