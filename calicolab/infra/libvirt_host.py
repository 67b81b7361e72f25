"""The libvirt side of a VM run on this host: the daemons, the run's storage pool, and a teardown
that leaves nothing behind.

    daemons    libvirtd and virtlogd, started by the tasks where nothing else starts them (a host
               without systemd: `virtlogd -d`, `libvirtd -d`) and stopped again at destroy if
               the tasks started them
    pool       <prefix>-pool, a transient dir pool for the box volume and the nodes' disks
    teardown   domains, volumes, the pool, both networks (<prefix>-mgmt, <prefix>-private), their
               bridges and dnsmasq, and the LIBVIRT_* iptables chains libvirt leaves after it stops
               (only those that were not there before the run)

What was started and what existed before is recorded in the run folder (libvirt.json), so a
later `invoke destroy` undoes exactly what this run caused. Docker's own chains and networks are
never touched: only chains named LIBVIRT_* and objects named with the run's prefix.
"""

from __future__ import annotations

import grp
import ipaddress
import json
import os
import re
import signal
import stat
from collections.abc import Callable
from pathlib import Path

from calicolab.core import shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.polling import Timeout, wait_for
from calicolab.infra import kvm

URI = "qemu:///system"
# The NAT network (vagrant-libvirt's management network, named per prefix). Not its default
# 192.168.121.0/24: that lies inside Calico 2.6's default pool 192.168.0.0/16, so the pool would
# overlap a host network and NAT outgoing could not be shown (no node address outside the pool).
# One /24 of this range per run, like the cluster subnet: libvirt refuses to start a network whose
# subnet another one's bridge holds, so two runs (a lane and a VM left up) cannot share one.
MANAGEMENT_RANGE = ipaddress.ip_network("10.121.0.0/16")
TABLES = ("filter", "nat", "mangle")
IPTABLES = ("iptables", "ip6tables")
DAEMON_DEADLINE = 30.0
PID_FILES = {"virtlogd": Path("/run/virtlogd.pid"), "libvirtd": Path("/run/libvirtd.pid")}
DEFINITIONS = Path("/etc/libvirt/qemu")


def names(cfg: ClusterConfig) -> dict[str, str]:
    """The libvirt objects of a run, all named with its prefix (the Vagrantfile uses the same)."""
    return {"pool": f"{cfg.prefix}-pool", "management_network": f"{cfg.prefix}-mgmt",
            "private_network": f"{cfg.prefix}-private", "domain_prefix": f"{cfg.prefix}-"}


def domain_names(cfg: ClusterConfig) -> list[str]:
    """The run's domains by their exact names (vagrant-libvirt: default_prefix + machine name). A
    match by prefix would take another run's too: `calicolab-` starts `calicolab-libvirt-...-node1`."""
    return [f"{names(cfg)['domain_prefix']}{node.name}" for node in cfg.nodes]


def pool_path(cfg: ClusterConfig) -> Path:
    # Under libvirt's own images folder: the qemu user must reach it (a checkout may not be).
    return Path("/var/lib/libvirt/images") / names(cfg)["pool"]


def management_subnet(cfg: ClusterConfig) -> str:
    """The run's management /24: 10.121.X.0/24, X the cluster subnet's third byte, so lanes on
    their own subnets (192.168.224.0/24, .225.0/24, ...) never share one; the next one where
    that would overlap a cluster subnet inside the range."""
    cluster = ipaddress.ip_network(cfg.subnet)
    third = cluster.network_address.packed[2]
    candidates = list(MANAGEMENT_RANGE.subnets(new_prefix=24))
    rotated = candidates[third:] + candidates[:third]
    free = next((net for net in rotated if not net.overlaps(cluster)), None)
    if free is None:
        raise UserError(f"the cluster subnet {cfg.subnet} covers {MANAGEMENT_RANGE}, where the VMs' management "
                        "network lies: choose a smaller subnet (CALICOLAB_SUBNET, e.g. 192.168.223.0/24)")
    return str(free)


def vagrant_settings(cfg: ClusterConfig, driver: str, cpu_model: str) -> dict[str, object]:
    """What the Vagrantfile's libvirt block reads from the effective configuration."""
    return {"libvirt": {**names(cfg), "management_subnet": management_subnet(cfg), "driver": driver,
                        "cpu_model": cpu_model}}


def _record_file(cfg: ClusterConfig) -> Path:
    return cfg.run_path / "libvirt.json"


def _read_record(cfg: ClusterConfig) -> dict:
    try:
        return json.loads(_record_file(cfg).read_text())
    except (OSError, ValueError):
        return {}


def _write_record(cfg: ClusterConfig, record: dict) -> None:
    cfg.run_path.mkdir(parents=True, exist_ok=True)
    _record_file(cfg).write_text(json.dumps(record, indent=2) + "\n")


def touched(cfg: ClusterConfig) -> bool:
    """The run folder has a record of libvirt use (daemons, chains): teardown has work to do."""
    return _record_file(cfg).exists()


def virsh(*args: str, check: bool = False, timeout: float = 60) -> shell.Outcome:
    return shell.run(["virsh", "-q", "-c", URI, *args], check=check, timeout=timeout)


def answers() -> bool:
    return shell.which_or_none("virsh") is not None and virsh("uri", timeout=15).ok


# ---- iptables ----------------------------------------------------------------------------

def libvirt_chains(save_text: str) -> set[str]:
    """Chains named LIBVIRT_* in `iptables-save` output, as table/chain."""
    chains, table = set(), ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":LIBVIRT_"):
            chains.add(f"{table}/{line[1:].split()[0]}")
    return chains


def chain_snapshot() -> dict[str, list[str]]:
    snap: dict[str, list[str]] = {}
    for tool in IPTABLES:
        out = shell.run([f"{tool}-save"], check=False, timeout=30) if shell.which_or_none(f"{tool}-save") else None
        snap[tool] = sorted(libvirt_chains(out.stdout)) if out and out.ok else []
    return snap


def jump_rules(rules_text: str, chain: str) -> list[list[str]]:
    """The `-A ... -j chain` lines of `iptables -S`, as delete commands' arguments."""
    found = []
    for line in rules_text.splitlines():
        parts = line.split()
        jumps = [parts[i + 1] for i, word in enumerate(parts[:-1]) if word == "-j"]
        if parts[:1] == ["-A"] and chain in jumps:
            found.append(["-D", *parts[1:]])
    return found


def remove_chains(keep: dict[str, list[str]], say: Callable[[str], None]) -> list[str]:
    """Remove LIBVIRT_* chains that were not there before (keep), with the rules jumping to them."""
    removed = []
    now = chain_snapshot()
    for tool, chains in now.items():
        extra = [c for c in chains if c not in set(keep.get(tool, []))]
        for entry in extra:
            table, chain = entry.split("/", 1)
            rules = shell.run([tool, "-w", "-t", table, "-S"], check=False, timeout=30).stdout
            for delete in jump_rules(rules, chain):
                shell.run([tool, "-w", "-t", table, *delete], check=False, timeout=30)
        for entry in extra:  # flushed first, then deleted: LIBVIRT chains jump to each other
            table, chain = entry.split("/", 1)
            shell.run([tool, "-w", "-t", table, "-F", chain], check=False, timeout=30)
        for entry in extra:
            table, chain = entry.split("/", 1)
            if shell.run([tool, "-w", "-t", table, "-X", chain], check=False, timeout=30).ok:
                removed.append(f"{tool} {entry}")
    if removed:
        say(f"removed {len(removed)} LIBVIRT_* iptables chain(s) the run caused")
    return removed


# ---- daemons -----------------------------------------------------------------------------


def _pid_of(name: str) -> int | None:
    try:
        pid = int(PID_FILES[name].read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if shell.alive(pid) else None


def has_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def _kvm_device_for_qemu_user(record: dict, say: Callable[[str], None]) -> None:
    """libvirt probes QEMU as root (KVM opens) but then checks /dev/kvm as its qemu user; where the
    device is root-only (0600, no udev rule), it finds KVM "not available now", throws the probed
    capabilities away and probes again on every call: `vagrant up` crawls. The kvm group's rw, as
    udev gives it on a normal host, makes the two agree; the old mode is put back at teardown."""
    if not kvm.KVM_DEVICE.exists() or "kvm_device" in record:
        return
    st = kvm.KVM_DEVICE.stat()
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    if st.st_gid == kvm_gid and st.st_mode & 0o060 == 0o060:
        return
    record["kvm_device"] = {"mode": stat.S_IMODE(st.st_mode), "gid": st.st_gid}
    os.chown(kvm.KVM_DEVICE, -1, kvm_gid)
    os.chmod(kvm.KVM_DEVICE, stat.S_IMODE(st.st_mode) | 0o060)
    say(f"{kvm.KVM_DEVICE}: group kvm rw for libvirt's qemu user (put back at destroy)")


def _restore_kvm_device(record: dict) -> None:
    old = record.get("kvm_device")
    if old and kvm.KVM_DEVICE.exists():
        os.chown(kvm.KVM_DEVICE, -1, old["gid"])
        os.chmod(kvm.KVM_DEVICE, old["mode"])


# CFS's weight of each nice level, 0 to 19 (kernel/sched/core.c, sched_prio_to_weight).
NICE_WEIGHTS = (1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15)
# cgroup v1's cpu controller: where libvirt without systemd puts its domains (partition /machine).
MACHINE_CPU = Path("/sys/fs/cgroup/cpu/machine")


def _machine_share(record: dict, say: Callable[[str], None]) -> None:
    """libvirt runs qemu in a cgroup of its own, which the kernel weighs against the other top-level
    groups (Docker's, which holds every lab node at once) and the host's processes, whatever the
    niceness of whoever started it. So the VM lane beside the lab steps (nice 10) got as much CPU
    as all the lab's nodes together: its two TCG guests used 958 CPU-s of one CI run's 2,345, and
    the lab's timing checks missed by 17 ms. A run started below the normal priority gives that
    group its niceness's weight; the old one is put back at teardown. Where the controller is not
    cgroup v1's (a systemd host's machine.slice), it is left as it is."""
    nice = os.nice(0)
    if nice <= 0 or "machine_shares" in record or not MACHINE_CPU.parent.joinpath("cpu.shares").is_file():
        return
    MACHINE_CPU.mkdir(exist_ok=True)  # made by libvirt at its first domain otherwise; it uses this one
    shares = MACHINE_CPU / "cpu.shares"
    record["machine_shares"] = int(shares.read_text())
    weight = NICE_WEIGHTS[min(nice, len(NICE_WEIGHTS) - 1)]
    shares.write_text(f"{weight}\n")
    say(f"{MACHINE_CPU}: cpu.shares {weight} for the guests, as for this run's nice {nice} (put back at destroy)")


def _restore_machine_share(record: dict) -> None:
    old = record.get("machine_shares")
    if old is not None and (MACHINE_CPU / "cpu.shares").is_file():
        (MACHINE_CPU / "cpu.shares").write_text(f"{old}\n")


def ensure_daemons(cfg: ClusterConfig, say: Callable[[str], None]) -> None:
    """libvirtd answering on qemu:///system; the chains and the daemons present before are recorded
    once per run, so teardown removes only what the run caused."""
    shell.require("virsh", "run `invoke setup` (apt-get install libvirt-clients)")
    record = _read_record(cfg)
    if "chains_before" not in record:
        record = {"chains_before": chain_snapshot(), "started": []}
    _kvm_device_for_qemu_user(record, say)
    _machine_share(record, say)
    _write_record(cfg, record)
    if answers():
        return
    started = list(record.get("started", []))
    if has_systemd():
        shell.run(["systemctl", "start", "libvirtd"], timeout=120)
        started.append("systemd:libvirtd")
    else:
        for daemon in ("virtlogd", "libvirtd"):
            if _pid_of(daemon) is None:
                shell.require(daemon, "run `invoke setup` (apt-get install libvirt-daemon-system)")
                # -d: daemonise (not -l: "Unable to initialize network sockets" here).
                shell.run([daemon, "-d"], timeout=60)
                pid = wait_for(lambda d=daemon: _pid_of(d), bool, f"{daemon} writes {PID_FILES[daemon]}",
                               timeout=DAEMON_DEADLINE)
                started.append(f"{daemon}:{pid}")
                say(f"started {daemon} (pid {pid}); it is stopped again at destroy")
    record["started"] = started
    _write_record(cfg, record)
    try:
        wait_for(answers, bool, f"libvirtd answers on {URI}", timeout=DAEMON_DEADLINE)
    except Timeout:
        raise UserError(f"libvirtd does not answer on {URI} within {DAEMON_DEADLINE:.0f} s: see "
                        "/var/log/libvirt/libvirtd.log") from None


def stop_daemons(cfg: ClusterConfig, say: Callable[[str], None]) -> None:
    record = _read_record(cfg)
    for entry in reversed(record.get("started", [])):
        kind, _, ident = entry.partition(":")
        if kind == "systemd":
            shell.run(["systemctl", "stop", ident], check=False, timeout=120)
        elif ident.isdigit() and shell.alive(int(ident)):
            pid = int(ident)
            os.kill(pid, signal.SIGTERM)
            try:
                wait_for(lambda p=pid: not shell.alive(p), bool, f"{kind} stops", timeout=DAEMON_DEADLINE)
            except Timeout:
                os.kill(pid, signal.SIGKILL)
            say(f"stopped {kind} (pid {pid}), which this run started")
    record["started"] = []
    _write_record(cfg, record)


# ---- the run's objects -------------------------------------------------------------------

def ensure_pool(cfg: ClusterConfig, say: Callable[[str], None]) -> None:
    pool = names(cfg)["pool"]
    if virsh("pool-info", pool).ok:
        return
    path = pool_path(cfg)
    path.mkdir(parents=True, exist_ok=True)
    # Transient: gone with pool-destroy, never written to libvirt's configuration.
    out = virsh("pool-create-as", pool, "dir", "--target", str(path))
    if not out.ok:
        raise UserError(f"libvirt storage pool {pool} could not be created: {out.stderr.strip()[-200:]}")
    say(f"storage pool {pool} at {path}")


def domains(cfg: ClusterConfig) -> list[str]:
    out = virsh("list", "--all", "--name")
    ours = set(domain_names(cfg))
    return [d for d in out.stdout.split() if d in ours] if out.ok else []


def networks(cfg: ClusterConfig) -> list[str]:
    out = virsh("net-list", "--all", "--name")
    ours = {names(cfg)["management_network"], names(cfg)["private_network"]}
    return [n for n in out.stdout.split() if n in ours] if out.ok else []


def bridge_of(network: str) -> str | None:
    m = re.search(r"<bridge name='([^']+)'", virsh("net-dumpxml", network).stdout)
    return m.group(1) if m else None


def own_bridges(cfg: ClusterConfig) -> set[str]:
    """The bridges of this run's networks that libvirt has now (a half-made run brought up
    again); none where libvirtd does not answer."""
    if not answers():
        return set()
    return {bridge for network in networks(cfg) if (bridge := bridge_of(network))}


def teardown(cfg: ClusterConfig, say: Callable[[str], None]) -> int:
    """Remove every libvirt object of the run (whatever `vagrant destroy` left), stop the daemons
    the run started and the chains it caused; returns how many things were removed."""
    record = _read_record(cfg)
    if not record and not answers():
        return 0  # this run folder never touched libvirt
    count = 0
    if answers():
        for domain in domains(cfg):
            virsh("destroy", domain)
            virsh("undefine", domain, "--nvram", "--remove-all-storage")
            say(f"removed domain {domain}")
            count += 1
        bridges = record.get("bridges", [])
        for network in networks(cfg):
            bridges.append(bridge_of(network) or "")
            virsh("net-destroy", network)
            virsh("net-undefine", network)
            say(f"removed network {network}")
            count += 1
        record["bridges"] = [b for b in dict.fromkeys(bridges) if b]
        _write_record(cfg, record)
        pool = names(cfg)["pool"]
        if virsh("pool-info", pool).ok:
            for vol in virsh("vol-list", pool, "--name").stdout.split():
                virsh("vol-delete", vol, "--pool", pool)
                count += 1
            virsh("pool-destroy", pool)
            virsh("pool-undefine", pool)
            say(f"removed storage pool {pool}")
            count += 1
    path = pool_path(cfg)
    if path.exists():
        for leftover in path.iterdir():
            leftover.unlink()
        path.rmdir()
    count += _kill_dnsmasq(cfg, say)
    stop_daemons(cfg, say)
    _restore_kvm_device(record)
    _restore_machine_share(record)
    for bridge in record.get("bridges", []):
        if Path(f"/sys/class/net/{bridge}").exists():
            shell.run(["ip", "link", "del", bridge], check=False, timeout=30)
            say(f"removed bridge {bridge}")
            count += 1
    # libvirt leaves its chains after its networks and the daemon are gone.
    count += len(remove_chains(record.get("chains_before", {}), say))
    # Checked on every run, not only by the interrupt tests: the next run must find a clean host.
    left = leftovers(cfg) + [f"iptables chain {c}" for c in new_chains(record.get("chains_before", {}))]
    if left:  # the record stays, so `invoke destroy` again knows what was there before
        raise StageFailed(f"destroy left {len(left)} thing(s) of the run on the host: {', '.join(left)}; "
                          "run `invoke destroy` again (docs/vm-runners.md, teardown)")
    _record_file(cfg).unlink(missing_ok=True)
    return count


def new_chains(before: dict[str, list[str]]) -> list[str]:
    """LIBVIRT_* chains present now that were not before the run (as `<tool> <table>/<chain>`)."""
    return [f"{tool} {entry}" for tool, chains in chain_snapshot().items()
            for entry in chains if entry not in set(before.get(tool, []))]


def _dnsmasq_pids(cfg: ClusterConfig) -> list[int]:
    """dnsmasq processes libvirt started for the run's networks (their config file names them)."""
    ours = (f"/{names(cfg)['management_network']}.conf", f"/{names(cfg)['private_network']}.conf")
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith("dnsmasq") and any(a.endswith(ours) for a in cmdline):
            pids.append(int(proc.name))
    return pids


def _kill_dnsmasq(cfg: ClusterConfig, say: Callable[[str], None]) -> int:
    pids = [p for p in _dnsmasq_pids(cfg) if shell.alive(p)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
        say(f"stopped dnsmasq (pid {pid}) of the run's network")
    return len(pids)


def leftovers(cfg: ClusterConfig) -> list[str]:
    """What of the run is still on the host, found without relying on libvirtd running."""
    found = []
    n = names(cfg)
    ours = set(domain_names(cfg))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        args = cmdline.split("\0")
        # -name guest=<domain>,debug-threads=on: the domain's exact name
        guest = {a.split(",")[0].removeprefix("guest=") for a in args if a.startswith("guest=")}
        if "qemu-system" in args[0] and guest & ours:
            found.append(f"qemu process {proc.name}")
    found += [f"dnsmasq process {p}" for p in _dnsmasq_pids(cfg)]
    definitions = [DEFINITIONS / f"{d}.xml" for d in domain_names(cfg)]
    definitions += [DEFINITIONS / "networks" / f"{n[k]}.xml" for k in ("management_network", "private_network")]
    found += [f"libvirt definition {xml}" for xml in definitions if xml.exists()]
    if pool_path(cfg).exists():
        found.append(f"pool folder {pool_path(cfg)}")
    if answers():
        found += [f"domain {d}" for d in domains(cfg)] + [f"network {x}" for x in networks(cfg)]
        if virsh("pool-info", n["pool"]).ok:
            found.append(f"storage pool {n['pool']}")
    record = _read_record(cfg)
    for entry in record.get("started", []):
        kind, _, ident = entry.partition(":")
        if ident.isdigit() and shell.alive(int(ident)):
            found.append(f"{kind} (pid {ident}) started by the run")
    return found
