"""The documentation cannot drift from the code: the generated pages (settings, metrics, alerts, the loop picture)
equal what the code gives today, every link in the README and docs/ resolves, and the README stays short."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_generated_pages_are_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_every_link_resolves() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"^(https?|mailto):", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_readme_leads_with_the_essentials_and_stays_short() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 160
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Two commands", "## The loop"]
    assert "make demo" in text and "make test" in text and "BSL 1.1" in text


def test_the_charts_kubernetes_range_starts_at_the_oldest_version_the_matrix_passed() -> None:
    """The chart claims no Kubernetes older than ``make matrix`` ran its suites against (docs/compatibility.md),
    and every Kubernetes row of the table from that version up passed."""
    import yaml

    declared = yaml.safe_load((ROOT / "charts" / "mitiga" / "Chart.yaml").read_text())["kubeVersion"]
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+)\.0-0", declared)
    assert floor, f"kubeVersion {declared!r}: expected a lower bound only, >=1.X.0-0"
    rows = [line.split("|") for line in (ROOT / "docs" / "compatibility.md").read_text().splitlines()
            if line.startswith("| Kubernetes |")]
    tested = [(tuple(int(n) for n in row[2].split()[0].rstrip(",").split(".")[:2]), row[4].strip()) for row in rows]
    assert tested, "docs/compatibility.md has no Kubernetes row: run make matrix"
    assert min(minor for minor, _ in tested) == (int(floor.group(1)), int(floor.group(2))), (declared, tested)
    assert all(outcome.startswith("passed") for _, outcome in tested), tested
