"""The README and docs/ pages: every relative link and anchor resolves, the README stays short,
every docs page is reachable from it, and the admin API's route list is complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.docblocks import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """``text`` without its fenced blocks and code spans (where brackets are not links)."""
    return CODE.sub("", FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces as
    hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto:: not ours to check


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        goal = (page.parent / path).resolve() if path else page
        if not goal.exists():
            broken.append(f"{target}: no {goal.relative_to(ROOT) if goal.is_relative_to(ROOT) else goal}")
        elif anchor and (goal.suffix != ".md" or anchor not in anchors(goal)):
            broken.append(f"{target}: no heading #{anchor} in {goal.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_sees_links_and_anchors() -> None:
    """The checker finds the README's links, and a heading's anchor is GitHub's."""
    assert "docs/scale-out.md" in links(ROOT / "README.md")
    assert "walkthrough-with-mosquitto_pub--mosquitto_sub" in anchors(ROOT / "README.md")
    assert "7-system-notifications" in anchors(ROOT / "docs" / "protocol.md")


def test_the_readme_is_short_and_links_every_docs_page() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 300
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(readme)}
    assert not [page.name for page in PAGES[1:] if page.resolve() not in linked]


def test_the_admin_api_route_list_has_every_route() -> None:
    """docs/operations.md lists each METHOD and path of docs/admin-openapi.json (the document a
    test keeps equal to the running API's)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    routes = json.loads((ROOT / "docs" / "admin-openapi.json").read_text())["paths"]
    missing = [f"{method.upper()} {path}" for path, methods in routes.items() for method in methods
               if f"`{method.upper()} {path}`" not in text]
    assert not missing, f"docs/operations.md's route list lacks {missing}"
