#!/bin/sh
# calicoctl for the host when Calico is the project's double (install as /usr/local/bin/calicoctl).
#
# The calicoctl double is a python3 script inside the calico-node double image; hosts need
# not have python3. Where the host has python3 and provisioning put the same script beside this
# wrapper (../lib/calico-double/calicoctl), it runs on the host, as the real binary does.
# Otherwise this wrapper runs it in a throwaway container that sees the host's network,
# processes and BIRD socket. Either way it works whether calico-node is up or not, like the
# real calicoctl. (A container costs seconds a call under software emulation.)
#
# Image: $CALICO_DOUBLE_IMAGE, else CALICO_DOUBLE_IMAGE in /etc/calico/calico.env, else the
# image of the calico-node container, else calicolab/calico-node-double:v2.6.1.
set -eu

# calicoctl v1.6.1's `node` commands need root (commands/node/permissions.go), in its words.
if [ "${1:-}" = "node" ] && [ "$(id -u)" != "0" ]; then
    echo "Need super user privileges: Operation not permitted"
    exit 1
fi

script="$(dirname "$0")/../lib/calico-double/calicoctl"
if [ -f "$script" ] && command -v python3 >/dev/null 2>&1; then
    exec python3 "$script" "$@"
fi

image="${CALICO_DOUBLE_IMAGE:-}"
if [ -z "$image" ] && [ -r /etc/calico/calico.env ]; then
    image=$(sed -n 's/^[[:space:]]*CALICO_DOUBLE_IMAGE=["]*\([^"]*\)["]*[[:space:]]*$/\1/p' /etc/calico/calico.env | tail -n 1)
fi
if [ -z "$image" ]; then
    image=$(docker inspect --format '{{.Config.Image}}' calico-node 2>/dev/null || true)
fi
image="${image:-calicolab/calico-node-double:v2.6.1}"

set -- --rm -i --net=host --pid=host \
    -v /var/run/calico:/var/run/calico \
    -e ETCD_ENDPOINTS="${ETCD_ENDPOINTS:-}" \
    -e ETCD_CA_CERT_FILE="${ETCD_CA_CERT_FILE:-}" \
    -e ETCD_CERT_FILE="${ETCD_CERT_FILE:-}" \
    -e ETCD_KEY_FILE="${ETCD_KEY_FILE:-}" \
    --entrypoint calicoctl "$image" "$@"
if [ -d /etc/calico ]; then
    set -- -v /etc/calico:/etc/calico:ro "$@"
fi
exec docker run "$@"
