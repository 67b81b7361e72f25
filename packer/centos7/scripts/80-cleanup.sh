#!/bin/bash
# Leave nothing machine-specific in the box: every VM made from it gets its own identity.
set -euo pipefail

yum clean all -q
rm -rf /var/cache/yum/*

# Persistent NIC naming would pin eth0 to the build VM's MAC address.
rm -f /etc/udev/rules.d/70-persistent-net.rules
mkdir -p /etc/udev/rules.d
ln -sf /dev/null /etc/udev/rules.d/70-persistent-net.rules
ifcfg=/etc/sysconfig/network-scripts/ifcfg-eth0
if [ -f "$ifcfg" ]; then
  sed -i -e '/^HWADDR=/d' -e '/^UUID=/d' "$ifcfg"
fi

# Host keys and machine-id are regenerated at first boot (sshd-keygen, systemd).
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id

rm -f /root/anaconda-ks.cfg /root/original-ks.cfg
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /tmp/* /var/tmp/*
rm -f /root/.bash_history /home/vagrant/.bash_history
