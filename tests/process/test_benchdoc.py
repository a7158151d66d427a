"""The benchmark sections of a document: each script rewrites only its own."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.support import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from benchdoc import write_section


def test_a_section_is_replaced_in_place_and_others_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# B\n\n<!-- BEGIN a -->\nold a\n<!-- END a -->\n\n<!-- BEGIN b -->\nb\n<!-- END b -->\n"
    )
    write_section("a", "new a", doc)
    assert doc.read_text() == (
        "# B\n\n<!-- BEGIN a -->\nnew a\n<!-- END a -->\n\n<!-- BEGIN b -->\nb\n<!-- END b -->\n"
    )


def test_a_doubled_section_collapses_into_one(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    block = "<!-- BEGIN a -->\nold\n<!-- END a -->"
    doc.write_text(f"# B\n\n{block}\n{block}\n\ntail\n")
    write_section("a", "new", doc)
    text = doc.read_text()
    assert text.count("<!-- BEGIN a -->") == 1
    assert "new" in text and "old" not in text and text.endswith("tail\n")
