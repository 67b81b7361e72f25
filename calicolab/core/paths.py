"""Where the project's files are, and the names it gives to what it builds."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILE = ROOT / "cluster.yaml"
VERSIONS_FILE = ROOT / "versions.yaml"
CACHE = ROOT / ".cache"
# Images the project builds are named <IMAGE_NAMESPACE>/<name>.
IMAGE_NAMESPACE = "calicolab"
# On a lab node: the saved images baked in by the node image (side-loaded, never pulled).
NODE_IMAGES = "/opt/calicolab/images"
