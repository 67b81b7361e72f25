#!/bin/bash
# First provisioning step, before any other yum call: every CentOS repo file points at the
# vault (mirrorlist.centos.org no longer resolves after CentOS 7's end of life). The
# kickstart already wrote CentOS-Base.repo; this also covers the other CentOS-*.repo files
# (debuginfo, sources, ...) so that enabling one of them later cannot reach the dead mirror.
set -euo pipefail

for repo in /etc/yum.repos.d/CentOS-*.repo; do
  sed -i \
    -e 's/^mirrorlist=/#mirrorlist=/' \
    -e 's|^#\?baseurl=http://mirror.centos.org/centos/\$releasever|baseurl=http://vault.centos.org/7.9.2009|' \
    -e 's|^#\?baseurl=http://mirror.centos.org/\$contentdir/\$releasever|baseurl=http://vault.centos.org/7.9.2009|' \
    "$repo"
done

if grep -h '^mirrorlist=' /etc/yum.repos.d/*.repo; then
  echo "a repo still uses a mirrorlist" >&2
  exit 1
fi
yum clean all -q
yum makecache -q
