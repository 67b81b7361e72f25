"""`invoke doctor` names a BGP session that flapped by Calico 2.6's connection collision as its
own finding (a warning: it healed), with the shape, the outage it cost, and the upstream fix;
a drop of another kind (a hold timer) or an old collision is not reported as one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fake_cluster import fake_view, said

from calicolab.diagnose import checks
from calicolab.diagnose.diagnoses import PASS, WARN

FIXTURES = Path(__file__).parent / "fixtures" / "bird_collision"
TAIL = r"^tail -n \d+ /var/log/calico/bird/current"


def _clock(stamp: str) -> int:
    return int(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def _view(tag: str, now: str, extra: str = ""):
    clock = _clock(now)
    return fake_view({n: {TAIL: said((FIXTURES / f"{tag}-{n}.log").read_text() + (extra if n == "node2" else "")
                                     + f"\n{clock}\n")} for n in ("node1", "node2")})


def test_a_recent_collision_is_its_own_warning_with_shape_outage_and_fix():
    # B-12: node1's new session got Cease 7 at 15:57:52.43 and was up again at 15:57:56.80.
    found = [f for f in checks.run(_view("B-12", "2026-12-04 16:10:00"), ["BGP collision"])]
    assert [(f.check, f.node, f.result) for f in found] == [("BGP collision", "cluster", WARN)]
    finding = found[0]
    assert finding.diagnosis is not None and finding.diagnosis.name == "BGP collision"
    assert "node1 Mesh_192_168_241_130 at 2026-12-04_15:57:52.42728: shape B, routes back after 4.4 s" \
        in finding.diagnosis.where
    assert "4.4 s without the peer's routes" in finding.seen
    assert "1183be5" in finding.diagnosis.cause and "Calico 3.4" in finding.diagnosis.cause


def test_an_old_collision_or_another_kind_of_drop_is_not_reported_as_one():
    assert [f.result for f in checks.run(_view("B-12", "2026-12-04 17:30:00"), ["BGP collision"])] == [PASS]
    hold = ("2026-12-04_16:06:18.86102 bird: Mesh_192_168_241_131: Error: Hold timer expired\n"
            "2026-12-04_16:06:18.86110 bird: Mesh_192_168_241_131: BGP session closed\n"
            "2026-12-04_16:06:18.86113 bird: Mesh_192_168_241_131: State changed to stop\n")
    assert [f.result for f in checks.run(_view("C-05", "2026-12-04 16:10:00", hold), ["BGP collision"])] == [PASS]
