"""A healthy two-node cluster made of FakeNodes, answering every probe of calicolab/diagnose/
the way the live lab does; a test overrides the answers of one symptom. The FakeNodes are strict
(tests/fakes.py): every command a check runs, on the healthy path or not, needs its rule here,
since a missing one fails the test instead of answering "exit 0, no output"."""

from __future__ import annotations

import json
from collections.abc import Callable

from fakes import FakeNode

from calicolab.core import config
from calicolab.diagnose.engine import ClusterView
from provision import etcd

Answer = Callable[[str], tuple[int, str]]
CFG = config.load(environ={})  # cluster.yaml: node1 192.168.223.131, node2 192.168.223.130
CLUSTER_ID = "6099349891559813660"
MEMBER_IDS = {"node1": "4386666900514948734", "node2": "15683712436478273649"}
LEADER = MEMBER_IDS["node1"]


def said(text: str, rc: int = 0) -> Answer:
    return lambda _cmd: (rc, text)


def http(body: str, status: int = 200) -> Answer:
    return said(f"{body}\nhttp-status={status:03d}")


NO_ANSWER = said("\nhttp-status=000", 7)


def status_json(name: str, cluster_id: str = CLUSTER_ID, leader: str = LEADER) -> str:
    return json.dumps({"header": {"cluster_id": cluster_id, "member_id": MEMBER_IDS[name], "revision": "1"},
                       "version": "3.4.23", "leader": leader})


def node_status(peer_ip: str, state: str = "up", info: str = "Established") -> str:
    return f"""Calico process is running.

IPv4 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| {peer_ip} | node-to-node mesh | {state}    | 09:31:18 | {info} |
+--------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.
"""


def etcd_conf(name: str, enable_v2: bool = True) -> str:
    """The /etc/etcd/etcd.conf the provisioner writes on this node, or one without ETCD_ENABLE_V2."""
    text = etcd.render_conf(CFG, CFG.node(name))
    return text if enable_v2 else "".join(ln for ln in text.splitlines(True) if not ln.startswith("ETCD_ENABLE_V2="))


def bird_protocols(peer_ip: str, state: str = "up", info: str = "Established") -> str:
    """birdcl's `show protocols` inside calico-node (what probes.bird_protocols reads)."""
    return ("BIRD 1.6.8 ready.\nname     proto    table    state  since       info\n"
            "static1  Static   master   up     09:31:10\nkernel1  Kernel   master   up     09:31:10\n"
            "device1  Device   master   up     09:31:10\n"
            f"Mesh_{peer_ip.replace('.', '_')} BGP      master   {state}     09:31:18    {info}\n")


def top(bird: bool = True, bird_age: int = 895, felix_age: int = 900, felix: bool = True) -> str:
    """`docker top calico-node -eo pid,etimes,comm` of calico/node 2.6.1: runsvdir and its services."""
    rows = ["931  900  runsvdir"] + ([f"946  {felix_age}  calico-felix"] if felix else []) + (
        [f"972  {bird_age}  bird", f"973  {bird_age}  bird6"] if bird else [])
    return "PID  ELAPSED  COMMAND\n" + "\n".join(rows) + "\n"


def healthy_rules(name: str) -> dict[str, Answer]:
    """Regex -> answer for one node of a healthy cluster (first match wins in FakeNode), one
    rule for every command the checks run, in calicolab/diagnose/*.py order."""
    me = CFG.node(name)
    peer = CFG.peers_of(name)[0]
    rules: dict[str, Answer] = {
        r"^true$": said(""),  # checks.run's SSH probe
        # etcd (diagnose/etcd.py)
        r"^systemctl is-active ": said("active\n"),  # etcd, docker, calico-node
        r"/v3(beta)?/maintenance/status": lambda cmd: (0, status_json(_owner(cmd)) + "\nhttp-status=200"),
        r":2379/version": http('{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}'),  # node IP and 127.0.0.1
        r":2379/health": http('{"health":"true"}'),
        r":2379/v2/keys/calico/bgp/v1/host/": _registered_ip,
        r":2379/v2/keys/": http('{"action":"get","node":{"dir":true}}'),
        r"^cat /etc/etcd/etcd\.conf( |$)": said(etcd_conf(name)),  # read when /v2/keys/ is 404
        r"/dev/tcp/": said("tcp-rc=0\n"),  # TCP 2380 to the peer, asked when quorum is lost
        r"^journalctl -u ": said(""),  # etcd, calico-node: read when the unit is not active
        # docker (diagnose/docker.py)
        r"^docker info": said(f" Cluster Store: etcd://{me.ip}:2379\n"),
        r"^docker network ls --filter driver=calico ": said("8c2f5b1d0a11 net1\n"),
        # calico-node, BIRD, BGP (diagnose/calico.py)
        r"^docker inspect -f '\{\{.State.Running\}\}' calico-node( |$)": said("true\n"),
        r"^test -S /run/docker/plugins/calico(-ipam)?\.sock$": said(""),
        # `ss -xl` as iproute2 prints listening unix sockets (the plugin's and BIRD's).
        r"^ss -xl": said("Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:Port\n"
                         "u_str LISTEN 0      128    /run/docker/plugins/calico.sock 41230 * 0\n"
                         "u_str LISTEN 0      128    /run/docker/plugins/calico-ipam.sock 41231 * 0\n"
                         "u_str LISTEN 0      16     /var/run/calico/bird.ctl 40110 * 0\n"),
        r"^test -S /var/run/calico/bird\.ctl$": said(""),
        r"^docker top calico-node -eo pid,etimes,comm": said(top()),
        r"^/usr/local/bin/calicoctl node status$": said(node_status(peer.ip)),  # by path: CentOS sudo
        r"^docker exec calico-node sh -c .*show protocols": said(bird_protocols(peer.ip)),  # calicoctl's fallback
        # BIRD's clock, which its SINCE times are in: the session above is 15 minutes old.
        r"^docker exec calico-node date \+%H:%M:%S": said("09:46:18\n"),
        r"^tail -n \d+ /var/log/calico/bird/current": said("\n1733306778\n"),  # BIRD log: no collision
        r"^ss -Htn state syn-sent$": said(""),  # no SYN waits for an answer
        r"^ping -c 1 ": said(""),  # small and 1500-byte DF pings to the peer answer (output to /dev/null)
        r"^docker logs --tail \d+ calico-node": said("Calico node started successfully\n"),
        r"^iptables-save": said("*filter\n:INPUT ACCEPT [0:0]\n-A FORWARD -i cali+ -j ACCEPT\nCOMMIT\n"),
        # host (diagnose/host.py)
        r"^sysctl -n ": said("1\n"),  # net.ipv4.ip_forward, net.ipv4.conf.all.rp_filter
    }
    return rules


def _registered_ip(cmd: str) -> tuple[int, str]:
    name = cmd.split("/host/")[1].split("/")[0]
    return 0, json.dumps({"node": {"value": CFG.node(name).ip}}) + "\nhttp-status=200"


def _owner(cmd: str) -> str:
    for node in CFG.nodes:
        if f"//{node.ip}:" in cmd:
            return node.name
    return "node1"


def fake_view(symptoms: dict[str, dict[str, Answer]] | None = None) -> ClusterView:
    """The healthy cluster, with per-node answers that replace (come before) the healthy ones."""
    nodes = {}
    for spec in CFG.nodes:
        rules = dict((symptoms or {}).get(spec.name, {}))
        for pattern, answer in healthy_rules(spec.name).items():
            rules.setdefault(pattern, answer)
        nodes[spec.name] = FakeNode(spec.name, spec.ip, rules)
    return ClusterView(CFG, nodes)


def both(rules: dict[str, Answer]) -> dict[str, dict[str, Answer]]:
    return {n.name: rules for n in CFG.nodes}
