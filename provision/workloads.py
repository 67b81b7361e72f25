"""The busybox image the guide's section 7 runs: pulled upstream, or loaded from the image
the project made from Debian's busybox-static (offline runs)."""

from __future__ import annotations

from calicolab.core.errors import UserError
from calicolab.core.paths import IMAGE_NAMESPACE, NODE_IMAGES
from calicolab.stack import downloads
from provision import fetch
from provision.context import Context
from provision.steps import Change

SECTION = "7 workloads"
IMAGE = "busybox:latest"


def busybox(ctx: Context) -> Change:
    if ctx.node.run(f"docker image inspect {IMAGE} >/dev/null").ok:
        return ctx.change("busybox image", False, f"{IMAGE} present")
    if ctx.facts["calico_source"] == "upstream":
        # From the configured name (a mirror's, say), verified by digest, then named as the
        # guide runs it: `docker run ... busybox`.
        reference = f"{ctx.cfg.upstream.busybox_image}:latest"
        how = fetch.image(ctx.node, downloads.image(reference), ctx.artifacts_lock(), ctx.cfg.upstream.strict,
                          ctx.say)
        if reference != IMAGE:
            ctx.node.run(f"docker tag {reference} {IMAGE}", check=True)
        return ctx.change("busybox image", True, f"{reference} ({how})")
    src = f"{IMAGE_NAMESPACE}/busybox:debian"
    if ctx.node.run(f"docker image inspect {src} >/dev/null").ok:
        # Already in the node's Docker (the Debian box carries it loaded): naming it is enough.
        ctx.node.run(f"docker tag {src} {IMAGE}", check=True)
        return ctx.change("busybox image", True, f"docker tag {src} {IMAGE}")
    cmd = f"docker load -i {NODE_IMAGES}/busybox.tar && docker tag {src} {IMAGE}"
    res = ctx.node.run(cmd, timeout=300)
    if not res.ok:
        raise UserError(f"{ctx.node.name}: `{cmd}` failed: {(res.stderr or res.stdout).strip()[-160:]}")
    return ctx.change("busybox image", True, cmd.split(" &&")[0])


STEPS = (busybox,)
