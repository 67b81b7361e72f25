#!/bin/sh
# calicoctl for the host when Calico is the project's double (install as /usr/local/bin/calicoctl).
#
# The calicoctl double is a python3 script that provisioning installs beside this wrapper
# (../lib/calico-double/calicoctl); hosts need not have python3. Where the host's python3 is
# 3.7+, the script runs on the host, as the real binary does. Otherwise this wrapper runs the
# same script, mounted from the host, with the python3 of the calico-node double image in a
# throwaway container that sees the host's network, processes, BIRD socket, /etc/calico and
# the etcd TLS files; `node status` runs inside calico-node when it runs (below). The image
# itself ships no calicoctl, like calico/node:v2.6.1. Either way it works whether calico-node is
# up or not, like the real calicoctl. (A container costs seconds a call under software emulation.)
#
# Image: $CALICO_DOUBLE_IMAGE, else CALICO_DOUBLE_IMAGE in /etc/calico/calico.env, else the
# image of the calico-node container, else calicolab/calico-node-double:v2.6.1.
set -eu
EMBEDDED_MARK="# ---- the calicoctl double script, embedded ----"

# calicoctl v1.6.1's `node` commands need root (commands/node/permissions.go), in its words.
if [ "${1:-}" = "node" ] && [ "$(id -u)" != "0" ]; then
    echo "Need super user privileges: Operation not permitted"
    exit 1
fi

script="$(cd "$(dirname "$0")/../lib/calico-double" 2>/dev/null && pwd)/calicoctl" || script=""
if { [ -z "$script" ] || [ ! -f "$script" ]; } && grep -qx "$EMBEDDED_MARK" "$0" 2>/dev/null; then
    # A self-contained copy (the local mirror serves one as the calicoctl release file, where
    # provisioning installs only the downloaded file): the script follows the marker line.
    script="${CALICOCTL_DOUBLE_CACHE:-/var/run/calico}/calicoctl-double-$(sed "1,/^$EMBEDDED_MARK\$/d" "$0" | cksum | cut -d' ' -f1)"
    if [ ! -f "$script" ]; then
        mkdir -p "${CALICOCTL_DOUBLE_CACHE:-/var/run/calico}"
        sed "1,/^$EMBEDDED_MARK\$/d" "$0" > "$script.$$" && mv "$script.$$" "$script"
    fi
fi
if [ -z "$script" ] || [ ! -f "$script" ]; then
    echo "calicoctl: the Calico double's calicoctl script is missing ($(dirname "$0")/../lib/calico-double/calicoctl): provision the node again" >&2
    exit 1
fi
if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info < (3, 7))' 2>/dev/null; then
    exec python3 "$script" "$@"
fi

# `node status` reads the host's processes (felix decides "running") and BIRD's socket folder.
# Where calico-node runs, its container sees those same processes (felix and BIRD run nowhere
# else) and mounts that folder, so the script runs there, on the image's python3, read from
# standard input. An exec makes no container: it answers at once, as the real binary does, even
# while Docker's cluster store has no quorum (a `docker run` then stalls for a minute).
if [ "${1:-}" = "node" ] && [ "${2:-}" = "status" ] \
        && [ "$(docker inspect --format '{{.State.Running}}' calico-node 2>/dev/null)" = "true" ]; then
    rc=0
    docker exec -i calico-node python3 - "$@" < "$script" || rc=$?
    case "$rc" in
        126|127) ;;  # calico-node's image cannot run it (no python3): a throwaway container below
        *) exit "$rc" ;;
    esac
fi

image="${CALICO_DOUBLE_IMAGE:-}"
if [ -z "$image" ] && [ -r /etc/calico/calico.env ]; then
    image=$(sed -n 's/^[[:space:]]*CALICO_DOUBLE_IMAGE=["]*\([^"]*\)["]*[[:space:]]*$/\1/p' /etc/calico/calico.env | tail -n 1)
fi
if [ -z "$image" ]; then
    image=$(docker inspect --format '{{.Config.Image}}' calico-node 2>/dev/null || true)
fi
image="${image:-calicolab/calico-node-double:v2.6.1}"

# `-e NAME` passes NAME only when it is set here: calicoctl sees the environment it would on
# the host: libcalico-go v1.x CalicoAPIConfigSpec's variables (lib/api/client_config.go).
set -- --entrypoint python3 "$image" /usr/local/lib/calico-double/calicoctl "$@"
set -- -e DATASTORE_TYPE -e ETCD_ENDPOINTS -e ETCD_AUTHORITY -e ETCD_SCHEME -e ETCD_USERNAME -e ETCD_PASSWORD \
    -e ETCD_CA_CERT_FILE -e ETCD_CERT_FILE -e ETCD_KEY_FILE "$@"
if [ -d /etc/calico ]; then
    set -- -v /etc/calico:/etc/calico:ro "$@"
fi
# TLS files named outside /etc/calico: their folders, read-only, at the same paths, once each.
mounted=" "
for file in "${ETCD_CA_CERT_FILE:-}" "${ETCD_CERT_FILE:-}" "${ETCD_KEY_FILE:-}"; do
    case "$file" in /*) dir=$(dirname "$file") ;; *) continue ;; esac
    case "$dir/" in /etc/calico/*) continue ;; esac
    case "$mounted" in *" $dir "*) continue ;; esac
    [ -d "$dir" ] || continue
    mounted="$mounted$dir "
    set -- -v "$dir:$dir:ro" "$@"
done
exec docker run --rm -i --net=host --pid=host -v /var/run/calico:/var/run/calico \
    -v "$script":/usr/local/lib/calico-double/calicoctl:ro "$@"
