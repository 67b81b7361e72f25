"""Provisioning installs the double's calicoctl script beside the wrapper on every host, so the
wrapper's container fallback (no python3 3.7+ on the host) can mount it: the double's image
ships no calicoctl, as calico/node:v2.6.1 ships none."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import FakeNode  # noqa: E402

from calicolab.core import config  # noqa: E402
from calicolab.core.paths import ROOT  # noqa: E402
from provision import calico, platform  # noqa: E402
from provision.context import Context  # noqa: E402


@pytest.mark.parametrize("python_ok", [True, False])
def test_the_script_is_installed_whether_or_not_the_host_can_run_it(tmp_path, python_ok) -> None:
    node = FakeNode(rules={r"^python3 -c ": (0 if python_ok else 1, "")})
    cfg = config.load({"run_dir": str(tmp_path / "run")}, environ={})
    ctx = Context(cfg, node, cfg.node(node.name), platform.CENTOS, facts={"calico_source": "double"})
    change = calico.calicoctl(ctx)
    assert node.files[calico.CALICOCTL] == (ROOT / "calico_double" / "calicoctl.sh").read_text()
    assert node.files[calico.CALICOCTL_SCRIPT] == (ROOT / "calico_double" / "calicoctl").read_text()
    assert ("in a container" in str(change)) is not python_ok
