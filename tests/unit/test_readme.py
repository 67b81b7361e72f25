"""The README stays a way in, and the docs stay within the repository.

README.md is at most 200 lines and keeps the two commands CI runs (`.ci/run`); every relative
link in README.md and docs/*.md names a file or folder that exists; no tracked file points at
the guide's notes outside the repository (the docs and seed folders of the shared folder beside
the checkout): the guide the suite replays is docs/guide.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAX_README_LINES = 200
COMMANDS = ("./bootstrap.sh invoke e2e", "./bootstrap.sh invoke test")
# Markdown links and images: [text](target) and ![alt](target); the target ends at a space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# Spelled in parts so that this file does not name them itself.
SHARED = "shared"
OUTSIDE = (f"../{SHARED}/docs", f"{SHARED}/seed")


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def broken_links(path: Path, text: str) -> list[str]:
    """Relative link targets in a markdown text that name nothing on disk (anchors dropped)."""
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor in the same page
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            broken.append(f"{path.relative_to(REPO)}: {target}")
    return broken


def mentions_outside(files: dict[str, str]) -> list[str]:
    """Files (name -> text) that name the guide's notes outside the repository."""
    return [f"{name}: {needle}" for name, text in files.items() for needle in OUTSIDE if needle in text]


def tracked_texts() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    texts = {}
    for name in filter(None, names.decode().split("\0")):
        path = REPO / name
        if path.is_file() and not path.is_symlink():
            texts[name] = path.read_bytes().decode("utf-8", errors="replace")
    return texts


def test_readme_is_at_most_200_lines():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines: move detail to docs/"


def has_command(text: str, command: str) -> bool:
    """The command as a whole: `invoke test` is not found in `invoke tests` or `invoke test-all`."""
    return re.search(re.escape(command) + r"(?![\w-])", text) is not None


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_has_the_two_commands(command):
    assert has_command((REPO / "README.md").read_text(), command)


def test_ci_runs_the_readmes_test_command():
    assert has_command((REPO / ".ci" / "run").read_text(), COMMANDS[1])


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file(path):
    assert broken_links(path, path.read_text()) == []


def test_no_tracked_file_points_outside_the_repository():
    assert mentions_outside(tracked_texts()) == []


# -- each check can fail -------------------------------------------------------------------------

def test_a_changed_command_is_caught():
    assert has_command("run `./bootstrap.sh invoke test` as root", COMMANDS[1])
    for text in ("./bootstrap.sh invoke tests", "./bootstrap.sh invoke test-all", "bootstrap.sh invoke e2e"):
        assert not has_command(text, COMMANDS[1]) and not has_command(text, COMMANDS[0])


def test_a_link_to_a_missing_file_is_caught():
    readme = REPO / "README.md"
    text = "see [the guide](docs/guide.md), [gone](docs/no-such-page.md#part) and ![pic](docs/run-page.png)"
    assert broken_links(readme, text) == ["README.md: docs/no-such-page.md#part"]
    assert broken_links(readme, "[web](https://example.com/x.md) [here](#layout)") == []


def test_a_mention_of_the_notes_outside_is_caught():
    found = mentions_outside({"a.py": f'"""From {OUTSIDE[0]}/guide.md."""', "b.md": f"see {OUTSIDE[1]}/x.zh.md",
                              "c.py": "oracles from CALICOLAB_ORACLES"})
    assert found == [f"a.py: {OUTSIDE[0]}", f"b.md: {OUTSIDE[1]}"]
