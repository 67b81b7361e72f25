"""docs/node-contract.md stays the written form of what the code assumes: every row is filled in
with a source, and the facts the code declares (sudo's secure_path, the tools outside it, the
sudoers line the lab takes) are the ones the contract states."""

import re

from calicolab.core import node_commands, paths

CONTRACT = paths.ROOT / "docs" / "node-contract.md"
SUDOERS_SCRIPT = paths.ROOT / "packer" / "lab-node" / "scripts" / "centos-sudoers.sh"


def _rows() -> list[list[str]]:
    rows = []
    for line in CONTRACT.read_text().splitlines():
        if not line.startswith("|") or set(line) <= {"|", "-", " "}:
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells[0] in ("#", "row"):  # a header
            continue
        rows.append(cells)
    return rows


def test_every_row_is_filled_in():
    rows = _rows()
    assert len(rows) >= 30
    for cells in rows:
        assert all(cells), f"empty cell in the contract row {cells}"


def test_rows_that_only_a_runner_confirms_say_how():
    rows = _rows()
    ids = {cells[0] for cells in rows}
    runner_rows = {cells[0] for cells in rows if "**runner**" in " ".join(cells)}
    confirm = {cells[0] for cells in rows if len(cells) == 2}  # the closing table: row, command
    assert runner_rows <= confirm, f"runner rows without a confirming command: {runner_rows - confirm}"
    assert {r for c in confirm for r in re.split(r",\s*", c)} <= ids


def test_secure_path_is_the_one_the_code_and_the_lab_use():
    text = CONTRACT.read_text()
    assert f"Defaults secure_path = {node_commands.CENTOS7_SECURE_PATH}" in text
    assert re.search(r"^line='Defaults\s+secure_path = " + re.escape(node_commands.CENTOS7_SECURE_PATH) + "'$",
                     SUDOERS_SCRIPT.read_text(), re.M)


def test_every_tool_installed_outside_secure_path_is_a_row_with_its_path():
    text = CONTRACT.read_text()
    for name, path in node_commands.OUTSIDE_SECURE_PATH.items():
        assert f"`{name}` (`{path}`)" in text, f"{name} at {path} is not in the contract"
        assert not any(path.startswith(d + "/") for d in node_commands.CENTOS7_SECURE_PATH.split(":"))
