#!/bin/sh
# Turn the Debian base into a lab "host": systemd, sshd, the vagrant user, and the packages
# the guide installs (baked so runs do not download them; provisioning still installs and
# configures them as the guide does, and finds them present).
set -eu
export DEBIAN_FRONTEND=noninteractive

# No daemon may start during the build: there is no init yet.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d

apt-get update -q
apt-get install -y -q --no-install-recommends \
  systemd systemd-sysv dbus openssh-server sudo iproute2 iptables iputils-ping \
  procps net-tools curl ca-certificates kmod less tcpdump $BAKED_PACKAGES
rm -f /usr/sbin/policy-rc.d

# A fresh host does not run etcd or Docker until the guide configures them.
for unit in etcd docker containerd docker.socket; do
  systemctl disable "$unit" >/dev/null 2>&1 || true
done
# Units that make no sense or hang in a container.
systemctl mask getty.target console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-modules-load.service sys-kernel-config.mount \
  sys-kernel-debug.mount systemd-remount-fs.service >/dev/null 2>&1
systemctl enable ssh >/dev/null 2>&1

# Vagrant's conventions: user vagrant, passwordless sudo, the insecure key (replaced by a
# per-node key on first `vagrant up`).
id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash vagrant
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/vagrant
chmod 0440 /etc/sudoers.d/vagrant
# sudo's PATH as CentOS 7.9 sets it (scripts/centos-sudoers.sh, uploaded beside this script).
sh /tmp/centos-sudoers.sh /etc/sudoers
rm -f /tmp/centos-sudoers.sh
visudo -c >/dev/null
install -d -m 700 -o vagrant -g vagrant /home/vagrant/.ssh
install -m 600 -o vagrant -g vagrant /tmp/vagrant.pub /home/vagrant/.ssh/authorized_keys
rm -f /tmp/vagrant.pub
sed -i 's/^#\?UseDNS.*/UseDNS no/' /etc/ssh/sshd_config
grep -q '^UseDNS' /etc/ssh/sshd_config || echo 'UseDNS no' >> /etc/ssh/sshd_config
# Units as CentOS 7.9 has them (scripts/centos-units.sh, uploaded beside this script): no SysV
# script for Docker or etcd, host keys made per node at first boot, no Debian maintenance timers.
sh /tmp/centos-units.sh /
rm -f /tmp/centos-units.sh

# Each node gets its own machine id at boot.
: > /etc/machine-id
apt-get clean
