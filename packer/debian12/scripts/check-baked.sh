# Run by Packer inside the booted image: what every run needs is there, and the image is left
# without per-machine identity (host keys, machine id and DHCP DUID are made at each node's first boot).
dockerd --version
etcd --version | head -1
for tar in /opt/calicolab/images/busybox.tar /opt/calicolab/images/calico-node-double.tar; do
  test -s "$tar" || { echo "missing side-loaded image $tar" >&2; exit 1; }
done
# Booted through GRUB with the box's command line: AppArmor off (Docker needs it off or a parser).
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo N)" = Y ]; then
  echo "AppArmor is enabled in the box: Docker cannot start unprivileged containers" >&2; exit 1
fi
# Neither etcd nor Docker runs until the guide configures them.
for unit in etcd docker; do
  if systemctl is-enabled --quiet "$unit"; then echo "$unit is enabled in the image" >&2; exit 1; fi
done
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
# The build boot's DHCP lease holds a DUID: nodes sharing it would share one client id.
rm -f /var/lib/dhcp/*.leases
