"""Issue 22, defect 8: e2e/upgrade/test_upgrade.py's refused-upgrade check expected "for the docker
provider" on every provider; on the VMs the refusal names the provider and the box's OS."""

from __future__ import annotations

from dataclasses import replace

import pytest

from calicolab.core import config
from calicolab.core.errors import UserError
from e2e.upgrade.test_upgrade import REFUSALS, refusal_reason

UNAVAILABLE = next(r for r in REFUSALS if r[1] == "3.4.99")  # a version no provider offers


@pytest.mark.parametrize("settings,named", [
    ({"provider": "docker"}, "docker"),
    ({"provider": "virtualbox"}, "virtualbox:centos7"),   # the VirtualBox message
    ({"provider": "libvirt", "vm_os": "centos7"}, "libvirt:centos7"),
    ({"provider": "libvirt", "vm_os": "debian12"}, "libvirt:debian12"),
])
def test_the_expected_reason_follows_the_runs_provider(settings, named, tmp_path):
    run = config.load({**settings, "run_dir": str(tmp_path)}, environ={})
    # What the run's cluster.json gives back to the e2e check.
    run = config.from_effective(config.write_effective(run))
    want = refusal_reason(UNAVAILABLE[2], run)
    assert want == f"is not available for the {named} provider"
    # ... and it is what `invoke upgrade --etcd 3.4.99` is refused with: the rehearsal checks the
    # asked versions this way before anything (calicolab/upgrade/rehearsal.py, with_overrides).
    with pytest.raises(UserError) as err:
        config.with_overrides(run, versions=replace(run.versions, etcd=UNAVAILABLE[1]))
    assert want in str(err.value)
