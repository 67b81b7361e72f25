"""Real VMs (libvirt, the Debian 12 box): Ctrl-C while `vagrant up` runs and SIGTERM while the
guide is provisioned both leave nothing on the host: no domain, volume, pool, network, bridge,
dnsmasq, daemon the run started, or LIBVIRT_* iptables chain, while Docker's own chains and
networks survive.

They boot VMs (minutes under software emulation), so they run only in a VM lane of their own:
CALICOLAB_VM_LAB_PREFIX and CALICOLAB_VM_LAB_SUBNET (a prefix and a free /24), and skip saying
which prerequisite is missing. The box comes from the box cache (built once by `invoke box
--provider libvirt --os debian12`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from calicolab.core import config, shell
from calicolab.core.paths import ROOT
from calicolab.core.polling import Timeout, wait_for
from calicolab.infra import libvirt_host

VARS = ("CALICOLAB_VM_LAB_PREFIX", "CALICOLAB_VM_LAB_SUBNET")
TOOLS = ("virsh", "libvirtd", "qemu-system-x86_64", "vagrant", "mmdebstrap", "iptables-save")


@pytest.fixture
def vm_lane(tmp_path):
    missing_tools = [t for t in TOOLS if not shell.which_or_none(t)]
    if missing_tools:
        pytest.skip(f"VM tests need {', '.join(missing_tools)} (run `invoke setup`)")
    missing = [v for v in VARS if not os.environ.get(v)]
    if missing:
        pytest.skip(f"VM tests boot real VMs in a lane of their own: set {' and '.join(missing)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALICOLAB_") or
           k in ("CALICOLAB_IMAGE_NAMESPACE", "CALICOLAB_BOX_CACHE")}
    env.update(CALICOLAB_PREFIX=os.environ[VARS[0]], CALICOLAB_SUBNET=os.environ[VARS[1]],
               CALICOLAB_RUN_DIR=str(tmp_path / "run"), CALICOLAB_REPORTS_DIR=str(tmp_path / "reports"),
               CALICOLAB_PROVIDER="libvirt", CALICOLAB_VM_OS="debian12", CALICOLAB_CALICO_SOURCE="double",
               CALICOLAB_VM_CPUS="1")
    cfg = config.load({"prefix": env["CALICOLAB_PREFIX"], "subnet": env["CALICOLAB_SUBNET"],
                       "run_dir": env["CALICOLAB_RUN_DIR"], "provider": "libvirt", "vm_os": "debian12"}, environ={})
    before = host_state()
    yield env, cfg, before
    subprocess.run([sys.executable, "-m", "invoke", "destroy"], cwd=ROOT, env=env, capture_output=True, timeout=600)


def host_state() -> dict[str, object]:
    save = shell.run(["iptables-save"], check=False).stdout
    chains = {line[1:].split()[0] for line in save.splitlines() if line.startswith(":")}
    networks = set(shell.run(["docker", "network", "ls", "--format", "{{.Name}}"], check=False).stdout.split())
    bridges = {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("virbr")}
    return {"chains": chains, "docker_networks": networks, "virbr": bridges}


def assert_nothing_left(cfg, before: dict[str, object], output: str) -> None:
    assert libvirt_host.leftovers(cfg) == [], output[-3000:]
    after = host_state()
    libvirt_chains = {c for c in after["chains"] if c.startswith("LIBVIRT_")} - before["chains"]
    assert libvirt_chains == set(), f"LIBVIRT chains left: {libvirt_chains}\n{output[-2000:]}"
    # Docker's chains and other lanes' networks survive the teardown.
    docker_chains = {c for c in before["chains"] if c.startswith("DOCKER")}
    assert docker_chains <= after["chains"], docker_chains - after["chains"]
    assert before["docker_networks"] <= after["docker_networks"]
    assert after["virbr"] <= before["virbr"], after["virbr"] - before["virbr"]
    assert not (cfg.run_path / ".vagrant").exists()


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "invoke", "e2e", "--suite", "read-only"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_log(proc: subprocess.Popen, log: Path, seen, what: str, timeout: float) -> None:
    """Poll the task's log (a deadline, no fixed sleep); stop early when the task has ended."""
    with contextlib.suppress(Timeout):  # judged just below, with the task's log in the failure
        wait_for(lambda: seen(log.read_text(errors="replace")) or proc.poll() is not None, bool, what,
                 timeout=timeout, interval=0.5)
    if proc.poll() is None and seen(log.read_text(errors="replace")):
        return
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=600)
    pytest.fail(f"{what}: not seen within {timeout:.0f} s\n{log.read_text(errors='replace')[-3000:]}", pytrace=False)


def qemu_running(prefix: str) -> bool:
    out = shell.run(["pgrep", "-f", f"guest={prefix}-"], check=False)
    return out.ok


def test_ctrl_c_while_vagrant_up_boots_the_vms_leaves_nothing(vm_lane, tmp_path):
    env, cfg, before = vm_lane
    log = tmp_path / "e2e.log"
    proc = start(env, log)
    wait_for_log(proc, log, lambda _text: qemu_running(cfg.prefix), "a VM of the lane booting", timeout=1800)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: invoke and vagrant alike
    rc = proc.wait(timeout=600)
    output = log.read_text(errors="replace")
    assert rc == 130, output[-3000:]
    assert "<== up: failed" in output and "Traceback" not in output, output[-3000:]
    assert_nothing_left(cfg, before, output)


def test_sigterm_while_provisioning_leaves_nothing(vm_lane, tmp_path):
    env, cfg, before = vm_lane
    log = tmp_path / "e2e.log"
    proc = start(env, log)
    steps = re.compile(r"==> provision\n(.*\n)*.*\b(changed|unchanged)\b")
    wait_for_log(proc, log, lambda text: bool(steps.search(text)), "the provision stage running its steps",
                 timeout=2400)
    proc.send_signal(signal.SIGTERM)  # a cancelled CI job: the task alone
    rc = proc.wait(timeout=600)
    output = log.read_text(errors="replace")
    assert rc == 143, output[-3000:]
    assert output.rstrip().endswith("terminated"), output[-1000:]
    assert_nothing_left(cfg, before, output)
