"""The busybox image the guide's section 7 runs: pulled upstream, or loaded from the image
the project made from Debian's busybox-static (offline runs), copied from the runner."""

from __future__ import annotations

from calicolab.stack import downloads, node_images
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
    # The image the project made (Debian's busybox-static), copied from the runner over SSH as on
    # every provider: no node carries it before provisioning.
    done = node_images.deliver(ctx.node, node_images.busybox(IMAGE))
    return ctx.change("busybox image", done.changed, done.detail)


STEPS = (busybox,)
