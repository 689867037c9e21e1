"""The docs a newcomer reads stay true to the repository: every link resolves inside it, no code or
doc cites a file that is not in it or a tracker's issue number, the README's first screen has the
quick start and the map of the docs, and the lab notebook reads in order."""

import datetime
import re
import subprocess

from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUICK_START = [
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e . && .venv/bin/relbench run",
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[all,test]' && "
    ".venv/bin/python -m pytest -q",
]


def tracked_text_files():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "relbench", "generators", "metrics", "trainers",
                          "reports", "tests", "benchmarks", "docs", "examples", "README.md", ".ci"],
                         capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / p for p in out if not p.startswith("benchmarks/results/")
            and p.rsplit(".", 1)[-1] in ("py", "md", "yaml", "yml", "j2", "js", "css", "toml", "txt", "run")]


def test_no_issue_numbers_and_no_files_outside_the_repository():
    issue = re.compile(r"\bissues? #?[0-9]+\b", re.IGNORECASE)
    outside = re.compile(r"ARCHITECTURE(\.md)? ?§|ARCHITECTURE\.md|\.\./shared\b")
    hits = []
    for path in tracked_text_files():
        if not path.is_file():
            continue  # deleted in the work tree, not yet in the index
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if issue.search(line) or outside.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_every_relative_link_resolves_inside_the_repository():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_readme_first_screen_has_the_question_the_quick_start_and_the_map_of_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(readme.splitlines()[:50])
    assert "**Does your generator draw the relation" in first_screen
    for command in QUICK_START:
        assert command in first_screen
    linked = set(LINK.findall(first_screen))
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} - linked - {"docs/extending.md"} == set()
    assert "benchmarks/README.md" in linked
    # every page is named somewhere in the README (the extending guide in its Plugins section)
    assert [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in readme] == []
    assert len(readme.splitlines()) <= 300


def test_lab_notebook_entries_are_dated_and_in_order():
    heads = re.findall(r"^## (\d{4}-\d\d-\d\d) · (.*)$", (ROOT / "docs" / "lab-notebook.md").read_text(), re.M)
    dates = [datetime.date.fromisoformat(d) for d, _ in heads]
    assert dates == sorted(dates)
    rounds = [int(m.group(1)) for _, title in heads if (m := re.match(r"Round (\d+):", title))]
    assert rounds == list(range(1, 10))
    assert "## Measured here" in (ROOT / "docs" / "lab.md").read_text()
    assert not re.search(r"^#+ Round \d", (ROOT / "docs" / "lab.md").read_text(), re.M)


def test_the_generator_recipes_are_valid_runs():
    """Each run of docs/generators.md's Recipes table is a valid run: a known generator whose
    arguments its plugin accepts (checked without loading any weights)."""
    import re

    import yaml

    from relbench.plugin.registry import GENERATORS

    text = (ROOT / "docs" / "generators.md").read_text()
    table = text.split("## Recipes", 1)[1].split("\n## ", 1)[0]
    runs = [yaml.safe_load(m) for m in re.findall(r"`(\{name: .*?\})`", table)]
    assert {r["generator"] for r in runs} == {"diffusers", "flux", "gligen", "images"} and len(runs) >= 8
    for r in runs:
        cls = GENERATORS.get(r["generator"], where="docs/generators.md")
        cls.Args(**r.get("args", {}))
