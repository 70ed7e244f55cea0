"""The project's documentation as the tests read it: README.md and every page of docs/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def documentation_text() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n\n".join(page.read_text(encoding="utf-8") for page in pages)


def doc_section(title: str) -> str:
    """The text under the heading `title` (any level), up to the next heading of the same or
    a higher level, in whichever page holds it."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        found = re.search(rf"^(#+) {re.escape(title)}\s*$", text, re.M)
        if found:
            level = len(found[1])
            rest = text[found.end() :]
            end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
            return rest[: end.start()] if end else rest
    raise AssertionError(f"no documentation section titled {title!r}")
