"""Named diagnoses: a symptom mapped to its usual cause and fix (the guide's three etcd
errors and the stack's failure table). Used by assertion messages; `invoke doctor` grows
from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    name: str
    cause: str
    fix: str

    def text(self) -> str:
        return f"{self.cause} -> {self.fix}"


ETCD_PUBLISH_TIMEOUT = Diagnosis(
    "etcd publish timeout", "no quorum: the peer is down, TCP 2380 is blocked or the initial cluster is wrong",
    "start all members at the same time; check `etcdctl member list` and TCP 2380 both ways")
ETCD_STALE_DATA = Diagnosis(
    "etcd stale data dir", "`member ... has already been bootstrapped` / cluster ID mismatch",
    "stop etcd and empty /var/lib/etcd/default.etcd on the member, then start all members together")
ETCD_LOOPBACK = Diagnosis(
    "etcdctl 127.0.0.1:4001", "etcdctl without --endpoints and no client URL on loopback",
    "add ,http://127.0.0.1:2379 to ETCD_LISTEN_CLIENT_URLS and restart etcd")
ETCD_V2_OFF = Diagnosis(
    "etcd v2 API off", "etcd 3.4+ started without --enable-v2: /v2/keys answers 404",
    "set ETCD_ENABLE_V2=true in /etc/etcd/etcd.conf and restart etcd")
BGP_PORT_BLOCKED = Diagnosis(
    "BGP port blocked", "BGP (TCP 179) to the peer gets no answer: a firewall drops it between the nodes",
    "allow TCP 179 both ways between the nodes (the guide turns firewalld off)")
BGP_PEER_DOWN = Diagnosis(
    "BGP peer not listening", "the peer refuses TCP 179: BIRD (calico-node) is not running on the peer",
    "check `systemctl status calico-node` and `calicoctl node status` on the peer")
BGP_WRONG_IP = Diagnosis(
    "BGP address", "the node registered a different BGP address (CALICO_IP) or a clashing node name",
    "compare /calico/bgp/v1/host/<node>/ip_addr_v4 with the node's IP; fix CALICO_IP in calico.env")
CALICO_NOT_RUNNING = Diagnosis(
    "calico-node down", "calico-node is not running (unit failed, or it started before etcd was reachable)",
    "`systemctl status calico-node`, `docker logs calico-node`; restart it once etcd is healthy")


def bgp_state(info: str, state: str) -> Diagnosis:
    """Which cause fits a BGP row that is not Established."""
    text = info.lower()
    if "refused" in text:
        return BGP_PEER_DOWN
    if state in ("", "down"):
        return CALICO_NOT_RUNNING
    return BGP_PORT_BLOCKED
