"""README.md and docs/ stand alone: every relative link points at a file of the repository,
and every #anchor at a heading of that page (GitHub's anchor rules)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"```.*?```", flags=re.S)


def anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for heading in re.findall(r"^#+ (.*)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_readme_quickstart_config_is_valid(tmp_path: Path) -> None:
    """The 10-line quickstart must survive `symlinkd config check` as written."""
    from symlinkd.config import load_settings  # noqa: PLC0415

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<<'YAML'\n(.*?)^YAML$", readme, flags=re.S | re.M)
    assert block, "no quickstart config in README.md"
    config = tmp_path / "symlinkd.yaml"
    config.write_text(block.group(1), encoding="utf-8")
    settings = load_settings(str(config), {})
    assert [m.rc_url for m in settings.mounts] == ["http://127.0.0.1:5572"]
