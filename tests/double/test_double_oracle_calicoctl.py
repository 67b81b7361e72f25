"""The calicoctl double against the oracle: calicoctl v1.6.1's own `node status` and `get`
output, computed by the upstream code (the oracle files, an input read from the folder
CALICOLAB_ORACLES names, see double_kit.oracles_dir; each file's `source` says how it was made).

Every case of calicoctl-node-status.json and calicoctl-get.json is a test, byte for byte: the
double's calicoctl reads a fake BIRD control socket serving the recorded reply (and sees the
recorded process list), or a fake etcd v2 holding the dataset as calico/node 2.6.1 stores it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from double_kit import EtcdV2HTTP, load_oracle, oracle_case, oracle_params
from test_double_calicoctl import ctl, fake_bird, fake_proc

STATUS = "calicoctl-node-status.json"
GET = "calicoctl-get.json"


# -- node status ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", oracle_params(STATUS))
def test_node_status_matches_calicoctl(case, monkeypatch, capsys, tmp_path) -> None:
    case = oracle_case(case)
    assert case["command"] == "calicoctl node status"
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(ctl, "BIRD_DIRS", (str(run), str(tmp_path / "absent")))
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 0)
    proc = fake_proc(tmp_path / "proc", *case["processes"])
    with fake_bird(run / "bird.ctl", case["bird_ctl_socket_reply_v4"]), \
            fake_bird(run / "bird6.ctl", case["bird_ctl_socket_reply_v6"]):
        code = ctl.node_status(proc)
    assert (capsys.readouterr().out, code) == (case["stdout"], case["exit_code"])


# -- get -------------------------------------------------------------------------------------
def dataset_keys(dataset: dict[str, Any]) -> dict[str, str]:
    """The dataset as etcd keys, in libcalico-go 63d3fb8's etcd layout (lib/backend/model:
    HostMetadataKey, NodeBGPConfigKey, GlobalBGPConfigKey `as_num`, IPPoolKey with the CIDR's
    `/` as `-`; the pool value per model.IPPool's json tags)."""
    keys: dict[str, str] = {}
    for node in dataset["nodes"]:
        name = node["name"]
        keys[f"/calico/v1/host/{name}/metadata"] = "{}"
        if not node.get("has_bgp_spec"):
            continue
        for family in ("4", "6"):
            address = node.get(f"ipv{family}Address")
            if address:
                interface = ipaddress.ip_interface(address)
                keys[f"/calico/bgp/v1/host/{name}/ip_addr_v{family}"] = str(interface.ip)
                keys[f"/calico/bgp/v1/host/{name}/network_v{family}"] = str(interface.network)
        if node.get("asNumber") is not None:
            keys[f"/calico/bgp/v1/host/{name}/as_num"] = str(node["asNumber"])
    if dataset.get("global_as_number_in_datastore") is not None:
        keys["/calico/bgp/v1/global/as_num"] = str(dataset["global_as_number_in_datastore"])
    for pool in dataset["ippools"]:
        network = ipaddress.ip_network(pool["cidr"])
        ipip = pool.get("ipip") or {}
        value = {"cidr": str(network), "ipip": "tunl0" if ipip.get("enabled") else "",
                 "ipip_mode": ipip.get("mode", "") if ipip.get("enabled") else "",
                 "masquerade": bool(pool.get("nat-outgoing")), "ipam": not pool.get("disabled"),
                 "disabled": bool(pool.get("disabled"))}
        keys[f"/calico/v1/ipam/v{network.version}/pool/{str(network).replace('/', '-')}"] = json.dumps(value)
    return keys


def datasets() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in load_oracle(GET)["datasets"]}


@pytest.mark.parametrize("case", oracle_params(GET))
def test_get_matches_calicoctl(case, monkeypatch, capsys, tmp_path) -> None:
    case = oracle_case(case)
    etcd = EtcdV2HTTP(dataset_keys(datasets()[case["dataset"]]))
    try:
        monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
        monkeypatch.setenv("ETCD_ENDPOINTS", etcd.url)
        argv = case["command"].split()
        assert argv[0] == "calicoctl"
        code = ctl.main(argv[1:])
    finally:
        etcd.close()
    assert (capsys.readouterr().out, code) == (case["stdout"], case.get("exit_code", 0))
