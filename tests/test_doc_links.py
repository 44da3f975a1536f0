"""Every relative Markdown link in the README, docs/ and the result files resolves: roofline.md's av_fusion rows
once linked to 24 report files that did not exist (a `--replot` named them after the branch bundles)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        *sorted((REPO / "benchmarks" / "results").rglob("*.md")),
    ]


def test_relative_markdown_links_resolve():
    broken = [
        f"{page.relative_to(REPO)}: {target}"
        for page in _pages()
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if not target.startswith(("http://", "https://", "mailto:", "#"))
        and not (page.parent / target.split("#")[0]).exists()
    ]
    assert not broken, "\n".join(broken)


def test_the_link_check_sees_links():
    """The pattern finds the roofline summary's report links (a check that matched nothing would pass)."""
    text = (REPO / "benchmarks" / "results" / "roofline.md").read_text(encoding="utf-8")
    assert "roofline/av_fusion_host_audio.md" in LINK.findall(text)
