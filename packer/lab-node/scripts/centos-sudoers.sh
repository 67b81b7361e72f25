#!/bin/sh
# sudo's PATH as CentOS 7.9 sets it: sudo-1.8.23's /etc/sudoers (RHEL/CentOS 7) carries
#     Defaults    secure_path = /sbin:/bin:/usr/sbin:/usr/bin
# where Debian's adds /usr/local/sbin and /usr/local/bin. With it, a command the suite runs under
# `sudo -n sh -c` from /usr/local/bin is not found on a lab node or the Debian box either, as on
# the users' CentOS hosts. Used by the lab node image (packer/lab-node) and the Debian box's
# rootfs hook (packer/debian12). $1: the sudoers file (default /etc/sudoers).
set -eu
sudoers="${1:-/etc/sudoers}"
line='Defaults    secure_path = /sbin:/bin:/usr/sbin:/usr/bin'
test "$(grep -c '^Defaults[[:space:]]\{1,\}secure_path' "$sudoers")" = 1 || {
  echo "$sudoers: expected one secure_path line to replace" >&2; exit 1; }
sed -i "s|^Defaults[[:space:]]\{1,\}secure_path.*|$line|" "$sudoers"
grep -qx "$line" "$sudoers"
