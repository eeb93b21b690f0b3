"""docs/handoff.md lists every ``# REAL-TWS:`` marker in the package, and nothing else:
each place whose behaviour rests on an unverified TWS fact is one row the person with a
real TWS checks, so a marker added without its row (or a row left after its marker went)
fails here."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDOFF = ROOT / "docs" / "handoff.md"
MARKER = re.compile(r"#\s*REAL-TWS:\s*(?P<text>.+?)\s*$")
ROW = re.compile(r"^\|\s*`(?P<path>ibkr_connector/[^`]+)`\s*\|\s*(?P<text>.+?)\s*\|\s*$")


def code_markers() -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for path in sorted((ROOT / "ibkr_connector").rglob("*.py")):
        for line in path.read_text().splitlines():
            match = MARKER.search(line)
            if match:
                found[(path.relative_to(ROOT).as_posix(), match["text"])] += 1
    return found


def doc_rows() -> Counter[tuple[str, str]]:
    rows: Counter[tuple[str, str]] = Counter()
    for line in HANDOFF.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[(match["path"], match["text"])] += 1
    return rows


def test_the_package_has_markers_and_every_one_is_a_one_line_comment() -> None:
    markers = code_markers()
    assert len(markers) >= 10
    assert all(text and not text.endswith("\\") for _, text in markers)


def test_every_marker_is_listed_in_the_handoff_and_every_row_is_a_marker() -> None:
    markers, rows = code_markers(), doc_rows()
    missing = sorted((markers - rows).elements())
    stale = sorted((rows - markers).elements())
    assert not missing, f"docs/handoff.md does not list these # REAL-TWS: markers: {missing}"
    assert not stale, f"docs/handoff.md lists markers the code no longer has: {stale}"
