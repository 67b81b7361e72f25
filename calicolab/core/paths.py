"""Where the project's files are, and the names it gives to what it builds."""

from __future__ import annotations

from pathlib import Path

from calicolab.core import environment

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILE = ROOT / "cluster.yaml"
VERSIONS_FILE = ROOT / "versions.yaml"
CACHE = ROOT / ".cache"
# Images the project builds are named <IMAGE_NAMESPACE>/<name>. A second checkout on the same
# Docker (a branch under test) sets its own, so the two never rebuild each other's images. A
# machine setting (config.SETTINGS["image_namespace"]), read once at import.
DEFAULT_IMAGE_NAMESPACE = "calicolab"
IMAGE_NAMESPACE = environment.value("image_namespace") or DEFAULT_IMAGE_NAMESPACE
# Where the lab image and the Debian box once baked the saved images. Nothing is put there now
# (a CentOS 7 VM has no such folder); the node contract test asserts it stays absent.
NODE_IMAGES = "/opt/calicolab/images"
# On the runner: the images the project builds for the nodes, saved (`docker save`) with a
# .id stamp each; provisioning copies them to a node over SSH (calicolab/stack/node_images.py).
# Per namespace: checkouts sharing this cache never overwrite each other's tars.
NODE_IMAGE_TARS = CACHE / "node-images" / IMAGE_NAMESPACE
