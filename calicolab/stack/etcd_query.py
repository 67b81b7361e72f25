"""Ask a node's etcd what the guide asks: members, leader, health, keys (v2 API).

Both etcd modes work (setting etcd_tls): etcdctl gets the client certificate when its
endpoints are https (ClusterConfig.etcd_endpoints says which), and HTTP requests to a
member use https with the client certificate when the node holds it, which provisioning
(provision/etcd_tls.py) arranges exactly when etcd's client port speaks TLS.
"""

from __future__ import annotations

import json
import shlex

from calicolab.core import versions
from calicolab.core.remote import CommandResult, Node
from calicolab.stack import parsers
from calicolab.stack.etcd_tls import CLIENT


def uses_v2_etcdctl(version: str) -> bool:
    # The guide runs `ETCDCTL_API=2 etcdctl`; etcdctl 3.5 and later dropped v2 commands.
    return versions.parse(version)[:2] < (3, 5)


def etcdctl_tls_flags(version: str) -> str:
    """The client certificate, in the flag names of the API etcdctl speaks."""
    if uses_v2_etcdctl(version):
        return f"--ca-file {CLIENT.ca} --cert-file {CLIENT.cert} --key-file {CLIENT.key}"
    return f"--cacert {CLIENT.ca} --cert {CLIENT.cert} --key {CLIENT.key}"


def etcdctl_command(args: str, version: str, endpoints: str, v3: bool = False) -> str:
    """etcdctl in the API the guide's commands use for `version` (v2 before 3.5); v3=True for
    what only the v3 API has (`snapshot save`, from 3.4)."""
    api = "2" if uses_v2_etcdctl(version) and not v3 else "3"
    tls = f"{etcdctl_tls_flags('3.5.0' if v3 else version)} " if "https://" in endpoints else ""
    # Always pass endpoints: etcdctl's default 127.0.0.1:4001 is one of the guide's errors.
    return f"ETCDCTL_API={api} etcdctl --endpoints {endpoints} {tls}{args}"


def etcdctl(node: Node, args: str, version: str, endpoints: str, timeout: float = 20,
            v3: bool = False) -> CommandResult:
    return node.run(etcdctl_command(args, version, endpoints, v3), timeout=timeout)


def members(node: Node, version: str, endpoints: str) -> list[parsers.EtcdMember]:
    if uses_v2_etcdctl(version):
        return parsers.etcd_member_list_v2(etcdctl(node, "member list", version, endpoints).stdout)
    listed = etcdctl(node, "member list -w json", version, endpoints)
    status = etcdctl(node, "endpoint status -w json", version, endpoints)
    return parsers.etcd_member_list_v3(listed.stdout or "{}", status.stdout or "[]")


def health(node: Node, version: str, endpoints: str) -> parsers.ClusterHealth:
    if uses_v2_etcdctl(version):
        res = etcdctl(node, "cluster-health", version, endpoints)
        return parsers.etcd_cluster_health_v2(res.stdout + res.stderr)
    res = etcdctl(node, "endpoint health", version, endpoints)
    total = len(endpoints.split(","))
    healthy = (res.stdout + res.stderr).count(" is healthy")
    verdict = "healthy" if healthy == total else "degraded" if healthy > total // 2 else "unavailable"
    return parsers.ClusterHealth(verdict, {})


def v2_url(ip: str, key: str, scheme: str = "http") -> str:
    return f"{scheme}://{ip}:2379/v2/keys/{key.lstrip('/')}"


def curl_command(ip: str, path: str, options: str = "-sS") -> str:
    """curl to a member's client port: https with the client certificate when this node holds
    one, else plain http (a shell test on the node, so callers need not know the mode)."""
    https = shlex.quote(f"https://{ip}:2379{path}")
    http = shlex.quote(f"http://{ip}:2379{path}")
    return (f"if [ -r {CLIENT.cert} ]; then curl {options} --cacert {CLIENT.ca} --cert {CLIENT.cert} "
            f"--key {CLIENT.key} {https}; else curl {options} {http}; fi")


def client_request(node: Node, ip: str, path: str, options: str = "-sS") -> CommandResult:
    """An HTTP request to a member's client port, e.g. path /version or /v2/keys/...?recursive=true."""
    return node.run(curl_command(ip, path, options))


def _key_path(key: str) -> str:
    return f"/v2/keys/{key.lstrip('/')}"


def v2_put(node: Node, ip: str, key: str, value: str) -> CommandResult:
    return client_request(node, ip, _key_path(key), f"-sS -f -X PUT --data-urlencode value={shlex.quote(value)}")


def v2_get_command(ip: str, key: str) -> str:
    return curl_command(ip, _key_path(key), "-sS -f")


def v2_get(node: Node, ip: str, key: str) -> str | None:
    res = node.run(v2_get_command(ip, key))
    if not res.ok:
        return None
    return json.loads(res.stdout).get("node", {}).get("value")


def v2_delete(node: Node, ip: str, key: str) -> CommandResult:
    return client_request(node, ip, _key_path(key), "-sS -f -X DELETE")
