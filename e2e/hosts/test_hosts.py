"""Guide section 3: hostnames, /etc/hosts, firewall off, IP forwarding and rp_filter, with the
guide's values (e2e/guide.py)."""

from calicolab.stack import parsers, probes
from e2e import expect, guide, state_reads


def test_hostname_is_the_guide_name(node, spec):
    expect.equal(f"{spec.name}: `hostname`", node.run(state_reads.HOSTNAME).stdout.strip(), spec.name,
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
    for key, value in guide.SYSCTL.items():
        expect.equal(f"{node.name}: {key} in /etc/sysctl.conf", conf.get(key), value,
                     "the guide's line is missing from /etc/sysctl.conf")
        expect.equal(f"{node.name}: live {key}", probes.sysctl(node, key), value,
                     "sysctl -p not applied; rp_filter=2 (loose) makes felix exit")


def test_firewall_is_off_and_drops_none_of_the_guides_ports(node):
    # The guide turns firewalld off; where a host has no firewalld unit at all, its effect is
    # what matters: no iptables rule drops etcd's or BGP's ports between the nodes.
    unit = node.run(state_reads.FIREWALL_UNIT_FILES)
    if unit.stdout.strip():
        state = probes.unit_state(node, guide.FIREWALL_SERVICE)
        expect.true(f"{node.name}: {guide.FIREWALL_SERVICE}", state != "active", "not running", state,
                    "the guide's `systemctl disable --now firewalld` did not run")
    for what, port in guide.PORTS.items():
        rules = probes.rules_dropping_port(node, port)
        expect.equal(f"{node.name}: iptables rules dropping {what} (TCP {port})", rules, [],
                     "a firewall still drops the port the nodes need between them")
