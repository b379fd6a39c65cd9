"""The documentation holds together: every relative link in README.md, BENCHMARKS.md and docs/*.md names
a file that exists (and, for a markdown file with #anchor, a heading of it), README.md stays under
10,000 bytes, and every `make help` target and every Make variable is documented (README.md's targets
table; README.md or docs/make.md for variables). Reads files only: no make, no network."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
MAKEFILES = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """The text without fenced blocks and code spans, where brackets are code, not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#+\s+(.*)$", FENCE.sub("", path.read_text()), re.M)
    return {_slug(h) for h in headings}


def _links(doc: Path) -> list[str]:
    return LINK.findall(_prose(doc.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s)/mailto and anchors within the page are not files
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve()
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.relative_to(ROOT)}: " + ", ".join(broken)


def test_readme_is_short() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size < 10_000, f"README.md is {size} bytes; move detail into docs/"


def _make_targets() -> set[str]:
    text = "\n".join(p.read_text() for p in MAKEFILES)
    return set(re.findall(r"^([a-zA-Z0-9_-]+):.*## ", text, re.M))


def _make_variables() -> set[str]:
    text = "\n".join(p.read_text() for p in MAKEFILES)
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*\?=", text, re.M))


def test_every_make_target_is_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `make "))
    names = set(re.findall(r"`(?:make )?([a-z0-9-]+)`", table))
    missing = sorted(_make_targets() - names)
    assert not missing, f"targets of `make help` missing from README.md's targets table: {missing}"


def test_every_make_variable_is_documented() -> None:
    text = (ROOT / "README.md").read_text() + (ROOT / "docs" / "make.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", text))
    missing = sorted(_make_variables() - documented)
    assert not missing, f"Make variables documented neither in README.md nor docs/make.md: {missing}"
