"""The destroy policy of `invoke e2e` holds whatever a stage does (try/finally)."""

import pytest

from calicolab.core import config
from calicolab.core.errors import StageFailed, UserError
from calicolab.runs.lifecycle import Lifecycle


def _lifecycle(tmp_path, monkeypatch, fail_in: str | None, interrupt: bool = False):
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports")}, environ={})
    lc = Lifecycle(cfg, say=lambda _m: None)
    calls: list[str] = []

    def stage(name):
        def run(*_args, **_kwargs):
            calls.append(name)
            with lc.stage(name):
                if name == fail_in:
                    if interrupt:
                        raise KeyboardInterrupt
                    raise StageFailed(f"{name} broke")
        return run

    for name in ("box", "up", "verify"):
        monkeypatch.setattr(lc, name, stage(name))
    monkeypatch.setattr(lc, "provision", lambda stage_name="provision": stage(stage_name)())
    monkeypatch.setattr(lc, "destroy", stage("destroy"))
    return lc, calls


@pytest.mark.parametrize("policy,fail_in,destroyed", [
    ("always", None, True), ("always", "provision", True), ("passing", None, True),
    ("passing", "verify", False), ("never", None, False), ("never", "up", False),
])
def test_destroy_policy(tmp_path, monkeypatch, policy, fail_in, destroyed):
    lc, calls = _lifecycle(tmp_path, monkeypatch, fail_in)
    if fail_in:
        with pytest.raises(StageFailed):
            lc.e2e(policy)
    else:
        assert lc.e2e(policy) is True
    assert ("destroy" in calls) is destroyed
    assert (tmp_path / "reports" / "lifecycle.xml").exists()  # the report is written either way


def test_ctrl_c_still_destroys_under_always(tmp_path, monkeypatch):
    lc, calls = _lifecycle(tmp_path, monkeypatch, "provision", interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        lc.e2e("always")
    assert calls[-1] == "destroy"
    assert [s.status for s in lc.report.stages if s.name == "provision"] == ["failed"]


def test_unknown_policy_is_refused_before_anything_runs(tmp_path, monkeypatch):
    lc, calls = _lifecycle(tmp_path, monkeypatch, None)
    with pytest.raises(UserError, match="unknown destroy policy"):
        lc.e2e("sometimes")
    assert calls == []


def test_unknown_suite_is_refused_before_anything_runs(tmp_path, monkeypatch):
    lc, calls = _lifecycle(tmp_path, monkeypatch, None)
    with pytest.raises(UserError, match="unknown suite 'nightly': use one of checks, read-only, upgrade"):
        lc.e2e("always", suite="nightly")
    assert calls == []


@pytest.mark.parametrize("idempotence", [True, False])
def test_the_idempotence_pass_runs_unless_skipped_and_a_skip_is_recorded(tmp_path, monkeypatch, idempotence):
    lc, calls = _lifecycle(tmp_path, monkeypatch, None)
    assert lc.e2e("always", idempotence=idempotence) is True
    assert ("idempotence" in calls) is idempotence
    (record,) = [s for s in lc.report.stages if s.name == "idempotence"]
    assert record.status == ("passed" if idempotence else "skipped")
    assert lc.lane["idempotence"] == str(idempotence).lower()  # on the run page and in the history key
