"""The docs site: its tables match their sources, it builds with no warning, and the README's and
SECURITY.md's links into it lead somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from scripts import docs_tables

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def test_generated_tables_match_their_sources() -> None:
    stale = [str(path.relative_to(ROOT)) for path in docs_tables.stale()]
    assert not stale, f"stale generated docs tables {stale}: run make docs-tables"


def test_generated_tables_name_every_parameter_alarm_and_profile() -> None:
    text = {path.name: body for path, body in docs_tables.render().items()}
    template = docs_tables.load_template()
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::CloudWatch::Alarm":
            assert f"`{name}`" in text["alarms.md"]
    for name in template["Parameters"]:
        assert f"| `{name}` |" in text["parameters.md"]
    for name in docs_tables.BUILTIN_PROFILES:
        assert f"| `{name}` |" in text["profiles.md"]


@pytest.mark.timeout(180)
def test_site_builds_strict(tmp_path: Path) -> None:
    """mkdocs build --strict: a broken link, anchor, snippet or nav entry is an error."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    warnings = [line for line in done.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0 and not warnings, done.stderr[-4000:]
    assert (tmp_path / "site" / "security.html").read_text().count("The trust boundary") >= 1


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slugify(heading, "-") for heading in HEADING.findall(text)}


@pytest.mark.parametrize("source", ["README.md", "SECURITY.md"])
def test_links_into_the_repository_lead_somewhere(source: str) -> None:
    """GitHub renders these two at the top level: their relative links and anchors must exist."""
    broken = []
    for target in LINK.findall(FENCE.sub("", (ROOT / source).read_text())):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = ROOT / file if file else ROOT / source
        missing_anchor = path.exists() and path.suffix == ".md" and bool(anchor) and anchor not in _anchors(path)
        if not path.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"{source} links to what does not exist: {broken}"


@pytest.mark.parametrize(("given", "expected"), [({}, []), ({"STACK": "prod-uploads"}, ["--stack", "prod-uploads"])])
def test_make_redrive_reads_the_local_stack_unless_a_stack_is_named(given: dict[str, str], expected: list[str]) -> None:
    """operations.md: `make redrive` is the local stack's; `make redrive STACK=name` a deployed one's."""
    env = {key: value for key, value in os.environ.items() if key != "STACK"}
    done = subprocess.run(
        ["make", "-n", "-s", "redrive", *(f"{k}={v}" for k, v in given.items())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    command = done.stdout.strip().splitlines()[-1].split()
    assert command[command.index("scripts.redrive") + 1 :] == expected


@pytest.mark.parametrize(
    "page", sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")])
)
def test_every_code_block_is_closed(page: str) -> None:
    """An unclosed fence turns the rest of a page into code on GitHub (CommonMark), and its links with it."""
    fences = [line for line in (ROOT / page).read_text().splitlines() if line.lstrip().startswith("```")]
    assert len(fences) % 2 == 0, fences
    # and each block closes with a bare fence: one that names a language opens the next block
    assert all(line.strip() == "```" for line in fences[1::2]), fences
