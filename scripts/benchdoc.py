"""Shared by the benchmark scripts: each owns one section of docs/benchmarks.md.

A section sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; writing it
replaces only that span, so one benchmark's run never erases another's figures.
"""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

_HEADER = (
    "# Benchmarks\n\n"
    "Figures measured on the project's 2-core machine over loopback. Each section is\n"
    "rewritten by the script named in it; the command that produced it is given.\n"
)


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> Path:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        # One block, where the first was: a doubled section (two writers) collapses too.
        text = pattern.sub(lambda _: block, text, count=1)
        head, _, tail = text.partition(block)
        text = head + block + pattern.sub("", tail)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
