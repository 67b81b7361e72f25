"""The run page shows each BGP session dropped in a fault's, a rehearsal's or a drill's window
with its shape, the entry it was judged by and BIRD's own lines; faults.json is read for it."""

from __future__ import annotations

import json
from pathlib import Path

from calicolab.report import html, run_data
from calicolab.stack import parsers

FIXTURES = Path(__file__).parent / "fixtures" / "bird_collision"


def _drops(tag: str) -> list[dict[str, object]]:
    logs = {n: (FIXTURES / f"{tag}-{n}.log").read_text() for n in ("node1", "node2")}
    return [d.to_json() for d in parsers.bgp_drops(logs)]


def test_each_drop_is_shown_with_its_shape_entry_and_lines():
    fault = {"step": {"step": "kill -9 bird on node1"}, "budget_entry": "bird-kill under bgp-collision",
             "bgp_drops": _drops("B-12")}
    drill = {"name": "restore", "bgp_drops": [dict(_drops("B-08")[0], shape="other", collision=False,
                                                   cause="Error: Hold timer expired")]}
    section = html._bgp_drops({"faults": [fault], "drills": [drill]})
    assert "kill -9 bird on node1: node1 Mesh_192_168_241_130 at 2026-12-04_15:57:52.42728" in section
    assert "shape B" in section and "judged by bird-kill under bgp-collision" in section
    assert "Received: Connection collision resolution" in section  # BIRD's own line, in the <pre>
    assert "not a collision" in section and "Error: Hold timer expired" in section
    assert html._bgp_drops({"faults": [{"bgp_drops": []}]}) == ""


def test_faults_json_is_read_into_the_run_data(tmp_path):
    entry = {"step": {"step": "kill -9 bird on node1"}, "budget_entry": "bird-kill", "bgp_drops": _drops("B-12")}
    (tmp_path / "faults.json").write_text(json.dumps([entry]))
    data = run_data.collect(tmp_path, {})
    assert [d["shape"] for f in data["faults"] for d in f["bgp_drops"]] == ["B"]
    assert "faults.json" in data["sources"]
