"""Guide section 3: hostnames, /etc/hosts, firewall off, IP forwarding and rp_filter."""

from calicolab.stack import parsers
from e2e import expect
from provision.hosts import SYSCTL


def test_hostname_is_the_guide_name(node, spec):
    expect.equal(f"{spec.name}: `hostname`", node.run("hostname").stdout.strip(), spec.name,
                 "hostname not set: the hosts section of provisioning did not run")
    expect.equal(f"{spec.name}: /etc/hostname", (node.read("/etc/hostname") or "").strip(), spec.name)


def test_etc_hosts_names_every_node(node, cluster):
    entries = parsers.hosts_file(node.read("/etc/hosts") or "")
    for other in cluster.nodes:
        expect.true(f"{node.name}: /etc/hosts entry for {other.name}",
                    other.name in entries.get(other.ip, set()), f"{other.ip} {other.name}",
                    sorted(entries.get(other.ip, set())) or "no entry",
                    "the /etc/hosts step did not run or the file was rewritten")


def test_ip_forwarding_and_rp_filter(node):
    conf = parsers.sysctl_conf(node.read("/etc/sysctl.conf") or "")
    for key, value in SYSCTL.items():
        expect.equal(f"{node.name}: {key} in /etc/sysctl.conf", conf.get(key), value)
        live = node.run(f"sysctl -n {key}").stdout.strip()
        expect.equal(f"{node.name}: live {key}", live, value,
                     "sysctl -p not applied; rp_filter=2 (loose) makes felix exit")


def test_no_firewall_service_running(node):
    for service in ("firewalld", "ufw"):
        active = node.run(f"systemctl is-active {service}").stdout.strip()
        expect.true(f"{node.name}: {service}", active != "active", "not running", active,
                    "a running firewall blocks etcd 2379/2380 and BGP 179 between the nodes")
