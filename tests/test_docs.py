"""README.md and the manual in docs/: every relative link and anchor resolves, README stays small.

Anchors follow GitHub's rule: the heading text lowercased, punctuation dropped, spaces turned
into ``-``, and ``-1``, ``-2``... appended to repeated headings. External http(s) and mailto
links are not fetched.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT = 12 * 1024

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target), with an optional "title"; text may hold `code` and brackets
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (links and headings there are not Markdown)."""
    lines, fence = [], ""
    for line in text.splitlines():
        opened = FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # punctuation dropped; letters, digits, _ and - stay
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    for line in prose_lines(path.read_text(encoding="utf-8")):  # explicit <a id/name="...">
        found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return found


def links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return targets


def broken_links(path: Path) -> list[str]:
    """``"target: reason"`` for every relative link of ``path`` that leads nowhere."""
    problems = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        file_part, _, fragment = target.partition("#")
        where = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not where.exists():
            problems.append(f"{target}: no such file")
        elif fragment and where.suffix == ".md" and unquote(fragment) not in anchors(where):
            problems.append(f"{target}: no such heading")
    return problems


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_readme_is_a_front_door_not_a_manual() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_the_checker_finds_broken_files_and_anchors_and_accepts_good_ones(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Tokens: refresh, `reuse` (RFC 9700)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Same\n\n## Same\n\n"
        "[ok](other.md#tokens-refresh-reuse-rfc-9700) [ok](#same-1) [ok](other.md)\n"
        "[web](https://example.com/x) `[code](nowhere.md)`\n"
        "[gone](missing.md) [bad](other.md#nope) [bad too](#same-2)\n"
        "```sh\n[ignored](nowhere.md)\n```\n")
    assert broken_links(page) == [
        "missing.md: no such file", "other.md#nope: no such heading", "#same-2: no such heading"]
