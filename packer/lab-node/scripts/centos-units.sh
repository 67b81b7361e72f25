#!/bin/sh
# Units arranged as on CentOS 7.9, for the lab node image (packer/lab-node) and the Debian box's
# rootfs hook (packer/debian12). $1: the root filesystem (default /). Offline: needs no running init.
# - Docker and etcd have units and no SysV script, as CentOS 7's docker-ce and etcd packages ship
#   (their specs list docker.service/docker.socket and etcd.service only). Debian's docker.io and
#   etcd-server also ship /etc/init.d scripts, and then `systemctl enable` runs update-rc.d through
#   systemd-sysv-install, which reloads systemd twice more: 3-4 s each on a TCG guest.
# - Host keys come from a unit of their own ordered before sshd, as CentOS 7's sshd-keygen.service,
#   so they are made while the network comes up instead of after it, in sshd's start.
# - Debian's maintenance timers (apt, dpkg backup, e2scrub) are off: a minimal CentOS 7 has none of
#   them, and none may run in the middle of a test.
set -eu
root="${1:-}"
root="${root%/}"  # "/" and "" alike: paths below start with /
for name in docker etcd; do
  rm -f "$root/etc/init.d/$name" "$root"/etc/rc[0-6S].d/[SK][0-9][0-9]"$name"
done
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat > "$root/etc/systemd/system/ssh-keygen.service" <<'UNIT'
[Unit]
Description=OpenSSH host keys, made at a machine's first boot
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
UNIT
cat > "$root/etc/systemd/system/ssh.service.d/hostkeys.conf" <<'UNIT'
[Unit]
Wants=ssh-keygen.service
After=ssh-keygen.service
UNIT
rm -f "$root"/etc/ssh/ssh_host_*
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer; do
  if [ -z "$root" ]; then systemctl disable "$unit"; else systemctl --root="$root" disable "$unit"; fi \
    >/dev/null 2>&1 || true  # a unit the image lacks
done
