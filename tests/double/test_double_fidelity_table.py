"""calico_double/README.md's fidelity table stays true: every `same` row cites tests that
exist, every `different` row says why."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "calico_double" / "README.md"
TEST_REF = re.compile(r"((?:tests|e2e)/[\w/]+\.py)::(\w+)")


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


def problems(text: str) -> list[str]:
    found = []
    for behaviour, source, double, status, evidence in table_rows(text):
        if not (behaviour and source and double):
            found.append(f"{behaviour or '?'}: an empty cell")
        if status == "same":
            refs = TEST_REF.findall(evidence)
            if not refs:
                found.append(f"{behaviour}: 'same' without a test")
            for path, name in refs:
                if not (REPO / path).is_file() or not defined(REPO / path, name):
                    found.append(f"{behaviour}: {path}::{name} does not exist")
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
