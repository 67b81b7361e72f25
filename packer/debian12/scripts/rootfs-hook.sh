#!/bin/sh
# mmdebstrap customize hook: $1 is the root filesystem. Runs natively on the build host, so the
# box carries Docker and etcd without a minute of apt in an emulated guest. Like a fresh CentOS 7 VM
# it carries no project image: provisioning copies what a node needs over SSH.
# Environment: VAGRANT_PUBKEY (file), FIRSTBOOT (script), CENTOS_SUDOERS and CENTOS_UNITS (scripts).
set -eu
root="$1"

# Neither etcd nor Docker runs until the guide configures them.
for unit in etcd docker containerd docker.socket; do
  chroot "$root" systemctl disable "$unit" >/dev/null 2>&1 || true
done
chroot "$root" systemctl enable ssh >/dev/null 2>&1

# Vagrant's conventions: user vagrant, passwordless sudo, the insecure key (replaced by a
# per-node key on the first `vagrant up`).
chroot "$root" useradd -m -s /bin/bash vagrant
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
# sudo's PATH as CentOS 7.9 sets it, replacing Debian's (the lab node image's script: one source).
sh "$CENTOS_SUDOERS" "$root/etc/sudoers"
chroot "$root" visudo -c >/dev/null
install -d -m 700 "$root/home/vagrant/.ssh"
install -m 600 "$VAGRANT_PUBKEY" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
echo 'UseDNS no' > "$root/etc/ssh/sshd_config.d/calicolab.conf"
# Units as CentOS 7.9 has them (the lab node image's script: one source): no SysV script for
# Docker or etcd, host keys made per node at first boot before sshd, no Debian maintenance timers.
sh "$CENTOS_UNITS" "$root"

# eth0 on DHCP (libvirt's management network); Vagrant's Debian guest adds eth1 via ifupdown.
printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n\nsource /etc/network/interfaces.d/*\n' \
  > "$root/etc/network/interfaces"
echo 'LABEL=calicoroot / ext4 errors=remount-ro 0 1' > "$root/etc/fstab"
echo debian12 > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian12\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"

# GRUB on the serial console too: with only the console terminal it hangs in a domain without
# a video device. Classic interface names, so the NAT side is eth0 and the private one eth1.
# No AppArmor, as on CentOS 7: with it on and no apparmor_parser, Docker refuses every
# unprivileged container ("the docker-default profile could not be loaded").
cat > "$root/etc/default/grub" <<'GRUB'
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200 net.ifnames=0 biosdevname=0 apparmor=0"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB

install -m 0755 "$FIRSTBOOT" "$root/usr/local/sbin/calicolab-firstboot"
: > "$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
