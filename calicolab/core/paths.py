"""Where the project's files are, and the names it gives to what it builds."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILE = ROOT / "cluster.yaml"
VERSIONS_FILE = ROOT / "versions.yaml"
CACHE = ROOT / ".cache"
# Images the project builds are named <IMAGE_NAMESPACE>/<name>. A second checkout on the same
# Docker (a branch under test) sets its own, so the two never rebuild each other's images.
IMAGE_NAMESPACE = os.environ.get("CALICOLAB_IMAGE_NAMESPACE", "").strip() or "calicolab"
# On a lab node: the saved images baked in by the node image (side-loaded, never pulled).
NODE_IMAGES = "/opt/calicolab/images"
