"""calico_double/README.md's fidelity table stays true: every `same` row cites tests that
exist, at least one of them independent of the double, and every `different` row says why."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "calico_double" / "README.md"
TEST_REF = re.compile(r"((?:tests|e2e)/[\w/]+\.py)::(\w+)")
# An upstream file with a line (`bird.cfg.mesh.template:77-86`, `startup.go:77`), or a facts
# document, named by the test (its comments, decorators) or its module's docstring.
UPSTREAM_CITE = re.compile(r"[\w/.-]+\.(?:go|template|local|toml|yaml|py)?:\d+|[\w/.-]+/run:\d+|calico-2\.6-facts\.md"
                           r"|guide\.md")


def table_rows(text: str) -> list[list[str]]:
    section = text.split("## Fidelity", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    header, rule, *body = rows
    assert header == ["behaviour", "Calico 2.6.1 (source)", "the double", "status", "tests, or why different"]
    assert set("".join(rule)) <= {"-"}
    return body


def defined(path: Path, name: str) -> bool:
    return re.search(rf"^def {name}\(", path.read_text(), re.M) is not None


def cited_text(path: Path, name: str) -> str:
    """The test's decorators and comments just above it, and its body."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    first = start
    while first > 0 and lines[first - 1].strip() and not lines[first - 1].startswith(("def ", "class ")):
        first -= 1
    end = start + 1
    while end < len(lines) and not (lines[end] and not lines[end][0].isspace() and not lines[end].startswith(")")):
        end += 1
    return "\n".join(lines[first:end])


def independent(path: str, name: str) -> bool:
    """True when the test's expected value comes from outside the double: an oracle, the guide on
    a lab, or an upstream literal with its file and line."""
    if path.startswith("e2e/") or Path(path).name.startswith("test_double_oracle_"):
        return True
    file = REPO / path
    doc = ast.get_docstring(ast.parse(file.read_text())) or ""
    return bool(UPSTREAM_CITE.search(cited_text(file, name)) or UPSTREAM_CITE.search(doc))


def problems(text: str) -> list[str]:
    found = []
    for behaviour, source, double, status, evidence in table_rows(text):
        if not (behaviour and source and double):
            found.append(f"{behaviour or '?'}: an empty cell")
        if status == "same":
            refs = TEST_REF.findall(evidence)
            if not refs:
                found.append(f"{behaviour}: 'same' without a test")
            missing = [(p, n) for p, n in refs if not (REPO / p).is_file() or not defined(REPO / p, n)]
            found += [f"{behaviour}: {p}::{n} does not exist" for p, n in missing]
            if refs and not missing and not any(independent(p, n) for p, n in refs):
                found.append(f"{behaviour}: no cited test takes its expected value from outside the double")
        elif status == "different":
            if len(evidence.split()) < 4:
                found.append(f"{behaviour}: 'different' without a reason")
        else:
            found.append(f"{behaviour}: status {status!r} is neither 'same' nor 'different'")
    return found


def test_every_row_is_backed_or_explained() -> None:
    text = README.read_text()
    rows = table_rows(text)
    assert len(rows) >= 30
    assert problems(text) == []
    counts = {s: sum(1 for r in rows if r[3] == s) for s in ("same", "different")}
    print(f"fidelity table: {counts['same']} same, {counts['different']} different")


def test_the_check_catches_a_missing_test_and_a_missing_reason() -> None:
    text = README.read_text()
    broken = text.replace("test_guide_hosts_start_where_real_calico_puts_them", "test_no_such_test", 1)
    assert any("test_no_such_test does not exist" in p for p in problems(broken))
    unexplained = text.replace("| different | on purpose: names the double wherever calicoctl is asked |",
                               "| different | |", 1)
    assert any("without a reason" in p for p in problems(unexplained))


def test_the_check_catches_a_row_held_only_by_the_doubles_own_output() -> None:
    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| WAIT_FOR_DATASTORE |"))
    own_only = (row.split("| same |")[0]
                + "| same | tests/double/test_double_ipam.py::test_big_int_rand_rejects_draws_outside_the_limit |")
    assert any("WAIT_FOR_DATASTORE: no cited test takes its expected value from outside the double" in p
               for p in problems(text.replace(row, own_only)))
