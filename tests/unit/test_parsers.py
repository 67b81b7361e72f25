"""Parsers read the guide's outputs by structure."""

from calicolab.stack import parsers

MEMBERS_V2 = """\
afc1b952a7b88713: name=node1 peerURLs=http://192.168.223.131:2380 clientURLs=http://192.168.223.131:2379 isLeader=true
c2ea0b3f1b36ab04: name=node2 peerURLs=http://192.168.223.130:2380 clientURLs=http://192.168.223.130:2379 isLeader=false
"""


def test_member_list_v2():
    members = parsers.etcd_member_list_v2(MEMBERS_V2)
    assert [(m.name, m.is_leader) for m in members] == [("node1", True), ("node2", False)]
    assert members[0].client_urls == ("http://192.168.223.131:2379",)


def test_member_list_v2_unstarted_member():
    members = parsers.etcd_member_list_v2("8e9e05c52164694d[unstarted]: peerURLs=http://10.0.0.2:2380\n")
    assert members[0].started is False and members[0].name == ""


def test_member_list_v3_leader_from_endpoint_status():
    listed = '{"members":[{"ID":1,"name":"node1","peerURLs":["p1"],"clientURLs":["c1"]},' \
             '{"ID":2,"name":"node2","peerURLs":["p2"],"clientURLs":["c2"]}]}'
    status = '[{"Endpoint":"c1","Status":{"header":{"member_id":1},"leader":2}},' \
             '{"Endpoint":"c2","Status":{"header":{"member_id":2},"leader":2}}]'
    members = parsers.etcd_member_list_v3(listed, status)
    assert [(m.name, m.is_leader) for m in members] == [("node1", False), ("node2", True)]


def test_cluster_health_degraded():
    text = ("member afc1b952a7b88713 is healthy: got healthy result from http://192.168.223.131:2379\n"
            "member c2ea0b3f1b36ab04 is unreachable: [http://192.168.223.130:2379] are all unreachable\n"
            "cluster is degraded\n")
    health = parsers.etcd_cluster_health_v2(text)
    assert health.verdict == "degraded"
    assert health.members == {"afc1b952a7b88713": True, "c2ea0b3f1b36ab04": False}


def test_docker_info_cluster_store():
    text = " Server Version: 20.10.24\n Cluster Store: etcd://192.168.223.131:2379\n Cluster Advertise:\n"
    assert parsers.docker_info_cluster_store(text) == "etcd://192.168.223.131:2379"
    assert parsers.docker_info_cluster_store(" Server Version: 20.10.24\n") is None


NODE_STATUS = """\
Calico process is running.

IPv4 BGP status
+-----------------+-------------------+-------+----------+--------------------------------+
|  PEER ADDRESS   |     PEER TYPE     | STATE |  SINCE   |              INFO              |
+-----------------+-------------------+-------+----------+--------------------------------+
| 192.168.223.130 | node-to-node mesh | up    | 09:31:18 | Established                    |
| 192.168.223.132 | node-to-node mesh | start | 09:31:18 | Active Socket: Connection      |
|                 |                   |       |          | refused                        |
+-----------------+-------------------+-------+----------+--------------------------------+

IPv6 BGP status
No IPv6 peers found.
"""


def test_calicoctl_node_status_by_header_names():
    status = parsers.calicoctl_node_status(NODE_STATUS)
    assert status.running
    first, second = status.ipv4_peers[:2]
    assert (first.address, first.peer_type, first.established) == ("192.168.223.130", "node-to-node mesh", True)
    assert second.state == "start" and not second.established


def test_calicoctl_node_status_not_running():
    status = parsers.calicoctl_node_status("Calico process is not running.\n")
    assert not status.running and status.ipv4_peers == ()


def test_columns_in_another_order_still_parse():
    text = ("Calico process is running.\nIPv4 BGP status\n| INFO | STATE | PEER ADDRESS | PEER TYPE | SINCE |\n"
            "| Established | up | 10.0.0.2 | node-to-node mesh | 10:00 |\n")
    peer = parsers.calicoctl_node_status(text).ipv4_peers[0]
    assert peer.address == "10.0.0.2" and peer.established


def test_ip_routes_kinds_and_attributes():
    routes = parsers.ip_routes(
        "blackhole 192.168.202.64/26 proto bird\n"
        "192.168.165.64/26 via 192.168.223.130 dev eth1 proto bird\n"
        "192.168.202.64 dev cali3f97e93fcdb scope link\n")
    assert routes[0].kind == "blackhole" and routes[0].dest == "192.168.202.64/26"
    assert (routes[1].via, routes[1].dev, routes[1].proto) == ("192.168.223.130", "eth1", "bird")
    assert routes[2].dev.startswith("cali") and routes[2].via is None


def test_ip_addr_busybox_format():
    text = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\n"
            "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
            "    inet 127.0.0.1/8 scope host lo\n"
            "3: cali0@if4: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue qlen 1000\n"
            "    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff\n"
            "    inet 192.168.202.64/32 scope global cali0\n")
    ifaces = parsers.ip_addr(text)
    assert ifaces["cali0"].mac == "ee:ee:ee:ee:ee:ee"
    assert ifaces["cali0"].ipv4 == ("192.168.202.64/32",)


def test_ping_ttls():
    assert parsers.ping_ttls("64 bytes from 192.168.104.0: seq=0 ttl=62 time=0.2 ms\n") == [62]
