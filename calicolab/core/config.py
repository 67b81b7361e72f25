"""The cluster configuration: cluster.yaml, overridden by the environment and by flags.

The effective configuration is written as JSON into the run folder; the Vagrantfile reads
that file (CALICOLAB_CONFIG), so Python and Ruby never describe the cluster twice. The project's
own processes hand values to each other through that file and command-line options, never
through the environment: this module (with calicolab/core/environment.py) is the only reader of
CALICOLAB_* variables, and `python -m calicolab.layers` checks that no other module reads one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from calicolab.core import environment
from calicolab.core.errors import UserError
from calicolab.core.paths import CLUSTER_FILE, DEFAULT_IMAGE_NAMESPACE, ROOT
from calicolab.core.versions import check_versions, family

PROVIDERS = ("docker", "virtualbox", "libvirt")
# The VM providers' box flavours: CentOS 7 as the guide is written (users' runners), Debian 12 as
# built and run on this project's own machines (libvirt, TCG or KVM; calicolab/infra/vm_debian.py).
VM_OSES = ("centos7", "debian12")
CALICO_SOURCES = ("upstream", "double", "auto")
PRIVILEGED = ("true", "false", "auto")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class Node:
    name: str
    ip: str


@dataclass(frozen=True)
class Versions:
    etcd: str
    docker: str
    calico: str
    calicoctl: str


@dataclass(frozen=True)
class Resources:
    cpus: int = 2
    memory: int = 1024


@dataclass(frozen=True)
class Upstream:
    """Where upstream parts come from (an air-gapped site points these at its own mirrors) and
    how strictly downloads are verified (calicolab/stack/downloads.py)."""

    registry_mirror: str = ""  # e.g. https://harbor.example.com: daemon.json registry-mirrors, as the guide does
    calico_node_image: str = "calico/node"  # e.g. harbor.example.com/calico/node
    busybox_image: str = "busybox"
    download_base: str = ""  # replaces https://github.com in release URLs (calicoctl, etcd archives)
    insecure_registry: str = ""  # host:port of a registry served over plain http (daemon.json insecure-registries)
    lock_file: str = "artifacts.lock"  # hashes recorded on first use; commit it
    strict: bool = False  # refuse any download neither pinned nor locked
    http_proxy: str = ""  # the nodes' proxy for http:// (apt/yum, curl downloads, Docker pulls)
    https_proxy: str = ""  # ... and for https://
    no_proxy: str = ""  # more hosts that bypass the proxy (the nodes and loopback always do)

    def proxy_env(self, nodes: tuple[Node, ...] = ()) -> dict[str, str]:
        """The proxy variables for the nodes' tools (empty when no proxy is set). The nodes and
        loopback always bypass it: etcd's clients and Docker's cluster store must not be proxied."""
        if not (self.http_proxy or self.https_proxy):
            return {}
        bypass = ["localhost", "127.0.0.1", *(n.ip for n in nodes), *(h for h in self.no_proxy.split(",") if h)]
        env = {"http_proxy": self.http_proxy, "https_proxy": self.https_proxy,
               "no_proxy": ",".join(dict.fromkeys(h.strip() for h in bypass))}
        return {k: v for k, v in env.items() if v}


# Test-only plants: a fault or a load a run adds on purpose, so a check shows it catches (or
# survives) what it must. Given as `--plant KIND=VALUE` to the tasks that reach them (e2e, verify,
# upgrade.*), handed to the e2e tests as the same pytest option; never read from the environment
# and never written into cluster.json, so no later task inherits one. Kind -> what VALUE may be.
PLANTS: dict[str, str] = {
    "fault": "bgp-drop:SECONDS (the killed-BIRD test also drops TCP 179 between the nodes that long) | "
             "bgp-cease (the peer restarts its protocol once BGP is back: a drop that is no collision)",
    "history": "lost-write (one etcd history client replaces an acknowledged write behind the history's back)",
    "probe": "blackhole (node1 -> node2 workload traffic dropped for 2 s as an upgrade rehearsal starts)",
    "bgp-query": "SECONDS (the killed-BIRD test asks both BIRDs their protocols this often: lab evidence)",
}


@dataclass(frozen=True)
class Plants:
    """The plants of one task (PLANTS); "" where none is planted."""

    fault: str = ""
    history: str = ""
    probe: str = ""
    bgp_query: str = ""

    def given(self) -> dict[str, str]:
        """Kind -> value of each plant set, in PLANTS' spelling."""
        return {kind: value for kind in PLANTS if (value := getattr(self, kind.replace("-", "_")))}

    def options(self) -> list[str]:
        """The same plants as command-line options, for a child process (pytest, a task)."""
        return [arg for kind, value in self.given().items() for arg in ("--plant", f"{kind}={value}")]

    @property
    def fault_seconds(self) -> float:
        """bgp-drop's seconds (0 for bgp-cease or no fault plant)."""
        return float(self.fault.partition(":")[2] or 0)


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _plant_ok(kind: str, value: str) -> bool:
    if kind == "fault":
        name, colon, seconds = value.partition(":")
        return (name == "bgp-cease" and not colon) or (name == "bgp-drop" and _positive(seconds))
    if kind == "bgp-query":
        return _positive(value)
    return value == {"history": "lost-write", "probe": "blackhole"}[kind]


def parse_plants(given: list[str] | tuple[str, ...] | None) -> Plants:
    """`--plant KIND=VALUE` options (repeatable) as Plants; anything else is refused in one line."""
    found: dict[str, str] = {}
    for item in given or ():
        kind, equals, value = str(item).partition("=")
        kind, value = kind.strip(), value.strip()
        if not equals or kind not in PLANTS:
            raise UserError(f"--plant {item!r}: write KIND=VALUE with KIND one of {', '.join(PLANTS)} "
                            "(docs/settings.md, test-only plants)")
        if not _plant_ok(kind, value):
            raise UserError(f"--plant {kind}={value!r} is not known: use {kind}={PLANTS[kind]}")
        if kind in found and found[kind] != value:
            raise UserError(f"--plant {kind} given twice ({found[kind]}, {value}): plant one of each kind")
        found[kind] = value
    return Plants(**{kind.replace("-", "_"): value for kind, value in found.items()})


@dataclass(frozen=True)
class ClusterConfig:
    prefix: str
    provider: str
    subnet: str
    nodes: tuple[Node, ...]
    versions: Versions
    calico_source: str
    privileged: str
    run_dir: str
    reports_dir: str
    resources: Resources = field(default_factory=Resources)
    etcd_tls: bool = False  # etcd's client side over TLS with client certificates (calicolab/stack/etcd_tls.py)
    upstream: Upstream = field(default_factory=Upstream)
    # One line per run (calicolab/report/history.py); empty: history.jsonl in the reports folder.
    # A nightly runner points it outside the checkout so it survives between jobs.
    history_file: str = ""
    vm_os: str = "centos7"  # the VM providers' box flavour (VM_OSES); the lab ignores it
    time_scale: str = "auto"  # deadlines multiplied by this; auto: longer for VMs under software emulation
    budgets: str = "budgets.yaml"  # the disruption budgets faults and rehearsals are judged by
    artifact_limit: int = 12  # failing e2e tests per pytest process whose nodes are snapshotted
    plants: Plants = field(default_factory=Plants)  # this task's test-only plants (never in cluster.json)

    # Derived values, so nothing downstream recomputes them differently.
    @property
    def netmask(self) -> str:
        return str(ipaddress.ip_network(self.subnet).netmask)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def run_path(self) -> Path:
        path = Path(self.run_dir)
        return path if path.is_absolute() else ROOT / path

    @property
    def reports_path(self) -> Path:
        path = Path(self.reports_dir)
        return path if path.is_absolute() else ROOT / path

    @property
    def history_path(self) -> Path:
        if not self.history_file:
            return self.reports_path / "history.jsonl"
        path = Path(self.history_file)
        return path if path.is_absolute() else ROOT / path

    @property
    def budgets_path(self) -> Path:
        path = Path(self.budgets)
        return path if path.is_absolute() else ROOT / path

    @property
    def lock_path(self) -> Path:
        path = Path(self.upstream.lock_file)
        return path if path.is_absolute() else ROOT / path

    @property
    def is_lab(self) -> bool:
        return self.provider == "docker"

    @property
    def is_debian_vm(self) -> bool:
        return self.provider == "libvirt" and self.vm_os == "debian12"

    @property
    def carries_double(self) -> bool:
        """The Calico double is an option on these nodes (provisioning side-loads its image): the
        lab and the Debian VMs; on a CentOS box only upstream Calico runs."""
        return self.is_lab or self.is_debian_vm

    @property
    def vagrant_guest(self) -> str:
        """The guest Vagrant would detect on the nodes, named so it does not: its detection runs
        one test command per guest plugin over SSH before the key swap (2.8 s on the lab, on a
        fresh connection per node). The lab's nodes and the Debian box are Debian; the CentOS
        box is CentOS (Vagrant 2.3.4 plugins/guests/centos, a child of redhat)."""
        return "debian" if self.is_lab or self.is_debian_vm else "centos"

    @property
    def install_target(self) -> str:
        """What versions.yaml's columns are chosen by: the provider, and the box flavour on VMs
        (Debian VMs install from Debian's archive, as the lab does)."""
        return install_target(self.provider, self.vm_os)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise UserError(f"unknown node {name!r}: this cluster has {known}")

    def peers_of(self, name: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.name != name)

    @property
    def etcd_scheme(self) -> str:
        return "https" if self.etcd_tls else "http"

    @property
    def etcd_endpoints(self) -> str:
        return ",".join(f"{self.etcd_scheme}://{n.ip}:2379" for n in self.nodes)

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{n.name}=http://{n.ip}:2380" for n in self.nodes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["plants"]  # a task's own: a later task reading the run folder plants nothing
        data["netmask"] = self.netmask
        data["prefixlen"] = self.prefixlen
        data["guest"] = self.vagrant_guest
        data["run_path"] = str(self.run_path)
        data["reports_path"] = str(self.reports_path)
        return data


def install_target(provider: str, vm_os: str) -> str:
    return provider if provider == "docker" else f"{provider}:{vm_os}"


@dataclass(frozen=True)
class Setting:
    """One user-facing setting, declared once: the loader, the task flags' help, `invoke config`
    and docs/settings.md (python -m calicolab.core.settings_doc) all read this declaration."""

    key: str                 # CALICOLAB_<KEY> in the environment; --<key with dashes> on the command line
    path: tuple[str, ...]    # where it sits in cluster.yaml; () for a machine setting (environment only)
    kind: str                # text | choice | bool | int | version | subnet | path | url | number
    default: Any             # used when cluster.yaml leaves it out; versions: one per versions.yaml column
    help: str
    live: bool = False       # may differ from what the running cluster was brought up with
    flag: str = ""           # the command-line spelling when it is not the key's (vm_os: --os)

    @property
    def env(self) -> str:
        return environment.variable(self.key)

    @property
    def machine(self) -> bool:
        """About this machine, not a cluster (where images and boxes are kept): no cluster.yaml
        key, no flag, not part of ClusterConfig; read with machine_value()."""
        return not self.path

    @property
    def option(self) -> str:
        return "--" + (self.flag or self.key.replace("_", "-"))

    @property
    def yaml_key(self) -> str:
        return ".".join(self.path)

    @property
    def site(self) -> bool:
        """Shared by every run this machine starts rather than chosen per cluster: where things are
        kept and judged (live settings, machine settings) and where upstream parts come from. A
        matrix lane keeps the caller's (lane_environ)."""
        return self.live or self.machine or self.path[0] == "upstream"


_S = Setting
SETTINGS: dict[str, Setting] = {s.key: s for s in (
    _S("prefix", ("prefix",), "text", "calicolab", "name prefix of containers, networks, volumes and images"),
    _S("provider", ("provider",), "choice", "docker",
       "docker (the local lab) | virtualbox | libvirt: where the two nodes run"),
    _S("subnet", ("subnet",), "subnet", "192.168.223.0/24",
       "the nodes' private network (the guide's eth1); the nodes keep their host parts (.131, .130)"),
    _S("calico_source", ("calico_source",), "choice", "auto",
       "upstream | double | auto: real Calico images, the project's double, or (lab) the double when "
       "upstream cannot be fetched"),
    _S("privileged", ("privileged",), "choice", "auto",
       "true | false | auto: --privileged for the node and calico-node containers, or the capability set "
       "that works where it is refused"),
    _S("run_dir", ("run_dir",), "path", ".run",
       "run folder: state, Vagrant dotfiles and keys of the current cluster", live=True),
    _S("reports_dir", ("reports_dir",), "path", "reports",
       "JUnit files, timings, failure artifacts and the run page index.html", live=True),
    _S("history_file", ("history_file",), "path", "",
       "one line per run for `invoke report.history`; empty: history.jsonl in the reports folder", live=True),
    _S("budgets", ("budgets",), "path", "budgets.yaml",
       "disruption budgets (YAML) the faults, the upgrade rehearsals and their grading judge by", live=True),
    _S("artifact_limit", ("artifact_limit",), "int", 12,
       "failing e2e tests per pytest process whose nodes are snapshotted (a broken cluster fails every "
       "check; a dozen snapshots say as much as fifty); 0: none", live=True),
    _S("etcd_tls", ("etcd_tls",), "bool", False,
       "true | false (the flag alone means true): etcd clients (etcdctl, Docker, Calico) over TLS with "
       "client certificates"),
    _S("vm_os", ("vm_os",), "choice", "centos7",
       "the VM providers' box: centos7 (the guide's hosts) | debian12 (libvirt only; runs under KVM or TCG)",
       flag="os"),
    _S("time_scale", ("time_scale",), "number", "auto",
       "every deadline multiplied by this; auto: 5 for VMs under software emulation (TCG), else 1"),
    _S("vm_cpus", ("resources", "cpus"), "int", 2, "CPUs of each VM (VM providers)"),
    _S("vm_memory", ("resources", "memory"), "int", 1024, "memory of each VM in MiB (VM providers)"),
    _S("registry_mirror", ("upstream", "registry_mirror"), "url", "",
       "e.g. https://harbor.example.com: the nodes' daemon.json registry-mirrors (guide [5])"),
    _S("calico_node_image", ("upstream", "calico_node_image"), "text", "calico/node",
       "calico/node image name without a tag, e.g. harbor.example.com/calico/node (tag: versions.calico)"),
    _S("busybox_image", ("upstream", "busybox_image"), "text", "busybox",
       "the workload image, without a tag"),
    _S("download_base", ("upstream", "download_base"), "url", "",
       "replaces https://github.com in release URLs (calicoctl, etcd archives)"),
    _S("insecure_registry", ("upstream", "insecure_registry"), "text", "",
       "host:port of a registry on plain http (daemon.json insecure-registries)"),
    _S("lock_file", ("upstream", "lock_file"), "path", "artifacts.lock",
       "sha256 sums and image digests recorded on first download (`invoke lock`); commit it"),
    _S("strict_artifacts", ("upstream", "strict"), "bool", False,
       "true: refuse any download neither pinned nor locked"),
    _S("http_proxy", ("upstream", "http_proxy"), "url", "",
       "e.g. http://proxy.example.com:3128: the nodes' apt/yum, downloads and Docker pulls"),
    _S("https_proxy", ("upstream", "https_proxy"), "url", "", "the same for https:// (usually the same proxy)"),
    _S("no_proxy", ("upstream", "no_proxy"), "text", "",
       "more hosts that bypass the proxy; the nodes' own addresses and loopback always do"),
    _S("etcd", ("versions", "etcd"), "version", {"lab": "3.4.23", "vm": "3.3.11"},
       "etcd version (versions.yaml lists what each provider can install)"),
    _S("docker", ("versions", "docker"), "version", {"lab": "20.10.24", "vm": "20.10.21"},
       "Docker version (versions.yaml lists what each provider can install)"),
    _S("calico", ("versions", "calico"), "version", "v2.6.1", "calico/node image tag"),
    _S("calicoctl", ("versions", "calicoctl"), "version", "v1.6.1", "calicoctl release"),
    # Machine settings: the environment only (a CI job or a second checkout sets them).
    _S("image_namespace", (), "text", DEFAULT_IMAGE_NAMESPACE,
       "names the images this checkout builds (NAMESPACE/probe, ...): a second checkout on the same "
       "Docker sets its own, so neither rebuilds the other's"),
    _S("box_cache", (), "path", "",
       "where VM boxes are built and kept, outside the checkout so a fresh clone reuses them; empty: "
       "/var/cache/calicolab/boxes as root, else $XDG_CACHE_HOME/calicolab/boxes", live=True),
)}
# Key -> where it sits in cluster.yaml: the scalars the environment and task flags may override.
OVERRIDABLE: dict[str, tuple[str, ...]] = {k: s.path for k, s in SETTINGS.items() if not s.machine}
CLUSTER_FILE_ENV = environment.variable("cluster_file")  # another cluster file instead of cluster.yaml


def machine_value(key: str, environ: dict[str, str] | None = None) -> str:
    """A machine setting's value: its variable, else its default."""
    setting = SETTINGS[key]
    if not setting.machine:
        raise KeyError(f"{key} is a cluster setting: read it from the ClusterConfig")
    return environment.value(key, environ) or str(setting.default)


def lane_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a run that is given its cluster settings as flags (a matrix lane): the
    caller's, less every CALICOLAB_* variable but the site settings' (Setting.site). A nightly's
    strict mode, mirror and box cache reach every lane; its CALICOLAB_ETCD does not."""
    environ = dict(os.environ if environ is None else environ)
    keep = {s.env for s in SETTINGS.values() if s.site}
    return {k: v for k, v in environ.items() if not k.startswith(environment.PREFIX) or k in keep}


def given_live(overrides: dict[str, Any] | None, environ: dict[str, str] | None = None) -> set[str]:
    """The live settings this command was given (a flag or a variable): they apply to the running
    cluster's tasks too (state.running_config), where the rest come from the run folder."""
    environ = os.environ if environ is None else environ
    return {k for k, s in SETTINGS.items() if s.live and not s.machine
            and ((overrides or {}).get(k) not in (None, "") or environ.get(s.env))}


def setting_value(cfg: ClusterConfig, key: str) -> Any:
    value: Any = cfg
    for part in SETTINGS[key].path:
        value = getattr(value, part)
    return value


def with_settings(cfg: ClusterConfig, values: dict[str, Any]) -> ClusterConfig:
    """cfg with these settings (key -> value, already resolved) put in place."""
    for key, value in values.items():
        *parents, leaf = SETTINGS[key].path
        if parents:  # one level of sections (upstream, resources, versions)
            section = getattr(cfg, parents[0])
            cfg = replace(cfg, **{parents[0]: replace(section, **{leaf: value})})
        else:
            cfg = replace(cfg, **{leaf: value})
    return validate(cfg)


def with_plants(cfg: ClusterConfig, plants: Plants) -> ClusterConfig:
    return replace(cfg, plants=plants)


def fallback_reports_dir(flag: str | None, environ: dict[str, str] | None = None) -> Path:
    """Where a task's reports go when the configuration cannot even be read: the flag, the
    variable, the default."""
    path = Path(flag or environment.value("reports_dir", environ) or SETTINGS["reports_dir"].default)
    return path if path.is_absolute() else ROOT / path


def load(overrides: dict[str, Any] | None = None, path: Path | None = None,
         environ: dict[str, str] | None = None) -> ClusterConfig:
    """Read cluster.yaml (or the file CALICOLAB_CLUSTER_FILE names), apply CALICOLAB_*
    variables, then flags; validate."""
    return _resolve(overrides, path, environ)[0]


@dataclass(frozen=True)
class Effective:
    """A setting's effective value and where it came from, for `invoke config`."""

    setting: Setting
    value: Any
    source: str  # default | cluster.yaml | CALICOLAB_<KEY> | --<flag>


def explain(overrides: dict[str, Any] | None = None, path: Path | None = None,
            environ: dict[str, str] | None = None) -> tuple[ClusterConfig, list[Effective]]:
    """load() plus, per setting, its value and its source. "default" also covers cluster.yaml
    holding the declared default (as shipped): "cluster.yaml" means it was changed there."""
    cfg, file_raw, env_layer, flag_layer = _resolve(overrides, path, environ)
    rows = []
    for key, setting in SETTINGS.items():
        if setting.machine:
            source = setting.env if environment.value(key, environ) else "default"
            rows.append(Effective(setting, machine_value(key, environ), source))
            continue
        value = setting_value(cfg, key)
        if key in flag_layer:
            source = setting.option
        elif key in env_layer:
            source = setting.env
        else:
            found, written = _lookup(file_raw, setting.path)
            source = "cluster.yaml" if found and _differs(written, setting.default) else "default"
        rows.append(Effective(setting, value, source))
    return cfg, rows


def _differs(written: Any, default: Any) -> bool:
    if isinstance(default, (dict, bool)) or isinstance(written, (dict, bool)):
        return written != default and str(written).lower() != str(default).lower()
    return str(written) != str(default)


def _lookup(raw: dict[str, Any], where: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = raw
    for part in where:
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _with_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill in each declared setting the file leaves out (its default lives in SETTINGS only)."""
    for setting in SETTINGS.values():
        if setting.machine:
            continue
        target = raw
        *parents, leaf = setting.path
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                break  # _build names the malformed section
        else:
            if leaf not in target:
                default = setting.default
                target[leaf] = dict(default) if isinstance(default, dict) else default
    return raw


def _resolve(overrides: dict[str, Any] | None, path: Path | None, environ: dict[str, str] | None
             ) -> tuple[ClusterConfig, dict[str, Any], dict[str, Any], dict[str, Any]]:
    environ = os.environ if environ is None else environ
    path = path or Path(environ.get(CLUSTER_FILE_ENV) or CLUSTER_FILE)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"cluster configuration {path} is missing: restore it from git") from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UserError(f"{path} is not valid YAML{where}: fix the file") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must be a mapping of settings")
    file_raw = json.loads(json.dumps(raw, default=str))  # as written, before defaults and overrides
    raw = _with_defaults(raw)
    env_layer = {k: environ[s.env] for k, s in SETTINGS.items() if environ.get(s.env) and not s.machine}
    flag_layer = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
    layers = {**env_layer, **flag_layer}
    file_subnet = raw.get("subnet")
    for key, value in layers.items():
        if key not in OVERRIDABLE:
            raise UserError(f"unknown setting {key!r}: known are {', '.join(OVERRIDABLE)}")
        target = raw
        *parents, leaf = OVERRIDABLE[key]
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    if "subnet" in layers and layers["subnet"] != file_subnet:
        raw["nodes"] = _move_nodes(raw.get("nodes"), str(file_subnet), str(layers["subnet"]))
    return validate(_build(raw, path)), file_raw, env_layer, flag_layer


def _move_nodes(nodes: Any, old_subnet: str, new_subnet: str) -> Any:
    """Keep each node's host part when only the subnet is overridden (a matrix lane moves
    the guide's .131/.130 into its own network), so one override is enough."""
    try:
        old, new = ipaddress.IPv4Network(old_subnet), ipaddress.IPv4Network(new_subnet)
    except ValueError:
        return nodes  # validate() names the malformed subnet
    if not isinstance(nodes, list):
        return nodes
    moved = []
    for node in nodes:
        try:
            ip = ipaddress.IPv4Address(str(node["ip"]))
        except (KeyError, TypeError, ValueError):
            moved.append(node)
            continue
        if ip in old and ip not in new:
            offset = int(ip) - int(old.network_address)
            if offset < new.num_addresses:
                node = {**node, "ip": str(new.network_address + offset)}
        moved.append(node)
    return moved


def _build(raw: dict[str, Any], path: Path) -> ClusterConfig:
    try:
        nodes = tuple(Node(name=str(n["name"]), ip=str(n["ip"])) for n in raw["nodes"])
        v = raw["versions"]
        column = family(install_target(str(raw["provider"]), str(raw["vm_os"])))
        versions = Versions(**{k: _for_column(k, v[k], column, path)
                               for k in ("etcd", "docker", "calico", "calicoctl")})
        res = Resources(**{k: _whole("resources." + k, v) for k, v in (raw.get("resources") or {}).items()})
        up = dict(raw.get("upstream") or {})
        upstream = Upstream(**{k: str(v) for k, v in up.items() if k != "strict"},
                            strict=_boolean("strict_artifacts", up.get("strict", False)))
        return ClusterConfig(
            prefix=str(raw["prefix"]), provider=str(raw["provider"]), subnet=str(raw["subnet"]),
            nodes=nodes, versions=versions, calico_source=str(raw["calico_source"]),
            privileged=str(raw["privileged"]).lower(), run_dir=str(raw["run_dir"]),
            reports_dir=str(raw["reports_dir"]), history_file=str(raw["history_file"] or ""),
            resources=res, etcd_tls=_boolean("etcd_tls", raw.get("etcd_tls", False)), upstream=upstream,
            vm_os=str(raw["vm_os"]), time_scale=str(raw["time_scale"]), budgets=str(raw["budgets"]),
            artifact_limit=_count("artifact_limit", raw["artifact_limit"]),
        )
    except (KeyError, TypeError) as err:
        raise UserError(f"{path}: missing or malformed setting {err}: compare with git") from None


def _for_column(component: str, value: Any, column: str, path: Path) -> str:
    """A version setting: one version for every provider, or one per versions.yaml column
    ({lab: ..., vm: ...}), so the CentOS VMs default to the guide's versions and the lab to
    Debian's. An override (flag, CALICOLAB_<NAME>) is a plain version and replaces both."""
    if not isinstance(value, dict):
        return str(value)
    if column not in value:
        raise UserError(f"{path}: versions.{component} names no version for the {column!r} column "
                        f"(it has {', '.join(map(str, value)) or 'none'}): add `{column}: <version>`")
    return str(value[column])


def _whole(key: str, value: Any) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise UserError(f"{key} must be a whole number, not {value!r}") from None
    if number < 1:
        raise UserError(f"{key} must be at least 1, not {number}")
    return number


def _count(key: str, value: Any) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise UserError(f"{key} must be a whole number, not {value!r}") from None
    if number < 0:
        raise UserError(f"{key} must be 0 or more, not {number}")
    return number


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in _BOOLEANS:
        raise UserError(f"{key} must be true or false, not {value!r}")
    return _BOOLEANS[word]


def from_effective(path: Path) -> ClusterConfig:
    """The configuration a run resolved (cluster.json in its run folder)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read the run's configuration {path} ({err}): run `invoke up`") from None
    if not isinstance(raw, dict):
        raise UserError(f"the run's configuration {path} is not a mapping: run `invoke destroy`, then `invoke up`")
    return validate(_build(_with_defaults(raw), path))


def validate(cfg: ClusterConfig) -> ClusterConfig:
    if cfg.provider not in PROVIDERS:
        raise UserError(f"unknown provider {cfg.provider!r}: use one of {', '.join(PROVIDERS)}")
    if not _NAME.match(cfg.prefix):
        raise UserError(f"prefix {cfg.prefix!r} must be lower-case letters, digits and '-'")
    try:
        subnet = ipaddress.IPv4Network(cfg.subnet)
    except ValueError:
        raise UserError(f"malformed subnet {cfg.subnet!r}: write it like 192.168.223.0/24") from None
    if len(cfg.nodes) < 2:
        raise UserError("the guide needs two nodes: list node1 and node2 in cluster.yaml")
    seen: set[str] = set()
    for node in cfg.nodes:
        if not _NAME.match(node.name):
            raise UserError(f"node name {node.name!r} must be lower-case letters, digits and '-'")
        try:
            ip = ipaddress.IPv4Address(node.ip)
        except ValueError:
            raise UserError(f"malformed IP {node.ip!r} for {node.name}: write it like 192.168.223.131") from None
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
            raise UserError(f"{node.name}'s IP {node.ip} is not a host address of {cfg.subnet}")
        if node.ip in seen or node.name in seen:
            raise UserError(f"node {node.name} ({node.ip}) is listed twice")
        seen.update((node.ip, node.name))
    if cfg.calico_source not in CALICO_SOURCES:
        raise UserError(f"unknown calico source {cfg.calico_source!r}: use {', '.join(CALICO_SOURCES)}")
    if cfg.privileged not in PRIVILEGED:
        raise UserError(f"privileged must be true, false or auto, not {cfg.privileged!r}")
    for component, version in asdict(cfg.versions).items():
        if not _VERSION.match(version):
            raise UserError(f"malformed {component} version {version!r}: write it like 3.4.23")
    if cfg.vm_os not in VM_OSES:
        raise UserError(f"unknown VM box flavour {cfg.vm_os!r}: use one of {', '.join(VM_OSES)}")
    if cfg.vm_os == "debian12" and cfg.provider == "virtualbox":
        raise UserError("the debian12 box is built for libvirt only: use --provider libvirt, or --os centos7")
    if cfg.time_scale != "auto":
        try:
            if float(cfg.time_scale) < 1:
                raise ValueError
        except ValueError:
            raise UserError(f"time_scale must be auto or a number of at least 1, not {cfg.time_scale!r}") from None
    check_versions(asdict(cfg.versions), cfg.install_target)
    _validate_upstream(cfg.upstream)
    return cfg


_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._-]*)*$")


def _validate_upstream(up: Upstream) -> None:
    for key in ("registry_mirror", "download_base"):
        value = getattr(up, key)
        if value and not _URL.match(value):
            raise UserError(f"{key} {value!r} must be an http(s) URL, e.g. https://mirror.example.com")
    for key in ("http_proxy", "https_proxy"):
        value = getattr(up, key)
        if value and not _URL.match(value):
            raise UserError(f"{key} {value!r} must be an http(s) URL, e.g. http://proxy.example.com:3128")
    if up.no_proxy and not re.match(r"^[A-Za-z0-9.:/*_-]+(,[A-Za-z0-9.:/*_-]+)*$", up.no_proxy):
        raise UserError(f"no_proxy {up.no_proxy!r} must be hosts or domains separated by commas, "
                        "e.g. .example.com,10.0.0.5")
    if up.insecure_registry and not re.match(r"^[a-z0-9.-]+:[0-9]+$", up.insecure_registry):
        raise UserError(f"insecure_registry {up.insecure_registry!r} must be host:port, e.g. 10.0.0.5:5000")
    for key in ("calico_node_image", "busybox_image"):
        value = getattr(up, key)
        if not _IMAGE.match(value):
            raise UserError(f"{key} {value!r} must be an image name without a tag, e.g. "
                            "harbor.example.com/calico/node (the tag comes from the versions)")


def with_overrides(cfg: ClusterConfig, **changes: Any) -> ClusterConfig:
    return validate(replace(cfg, **changes))


def write_effective(cfg: ClusterConfig, extra: dict[str, Any] | None = None) -> Path:
    """Write the resolved configuration (plus provider settings such as image names and run
    flags) where the Vagrantfile and later stages find it."""
    try:
        cfg.run_path.mkdir(parents=True, exist_ok=True)
        target = cfg.run_path / "cluster.json"
        target.write_text(json.dumps({**cfg.to_json(), **(extra or {})}, indent=2) + "\n")
    except OSError as err:
        raise UserError(f"run folder {cfg.run_path} cannot be written ({err.strerror}): "
                        "pick another with --run-dir or CALICOLAB_RUN_DIR") from None
    return target
