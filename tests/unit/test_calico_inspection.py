"""Which Calico ran is read off the running container and its image, not the setting."""

from __future__ import annotations

import json

from fakes import FakeNode

from calicolab.stack import upstream

DIGEST = "sha256:" + "d" * 64


def _node(image: str, labels: dict, digests: list[str]) -> FakeNode:
    return FakeNode(rules={
        r"^docker inspect -f '\{\{\.Config\.Image\}\} \{\{\.Image\}\}' calico-node$":
            (0, f"{image} sha256:{'e' * 64}\n"),
        # Docker prints its JSON without spaces
        r"^docker image inspect -f ": (0, f"{json.dumps(labels)} {json.dumps(digests, separators=(',', ':'))}\n")})


def test_the_double_is_named_by_its_own_label_even_when_served_as_calico_node():
    served = _node("calico/node:v2.6.1", {"org.opencontainers.image.title": "calico-node double"},
                   [f"calico/node@{DIGEST}"])
    seen = upstream.inspect_running(served)
    assert seen.source == "double" and "served as calico/node:v2.6.1" in seen.text and DIGEST in seen.text
    local = _node("calicolab/calico-node-double:v2.6.1", {"org.opencontainers.image.title": "calico-node double"}, [])
    assert upstream.inspect_running(local).source == "double"


def test_real_calico_node_is_upstream_with_its_digest():
    seen = upstream.inspect_running(_node("calico/node:v2.6.1", {}, [f"calico/node@{DIGEST}"]))
    assert (seen.source, seen.text) == ("upstream", f"calico/node:v2.6.1, {DIGEST}")


def test_no_container_is_unknown():
    node = FakeNode(rules={r"^docker inspect ": (1, "")})
    assert upstream.inspect_running(node).source == "unknown"
