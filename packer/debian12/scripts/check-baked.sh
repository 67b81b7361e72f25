# Run by Packer inside the booted image: what every run needs is there, and the image is left
# without per-machine identity (host keys, machine id and DHCP DUID are made at each node's first boot).
dockerd --version
etcd --version | head -1
# Nothing a fresh CentOS 7 VM would not have: no project image, saved or loaded (provisioning
# copies them over SSH), and sudo's PATH as CentOS 7.9's /etc/sudoers sets it.
if [ -e /opt/calicolab/images ]; then echo "the box carries /opt/calicolab/images" >&2; exit 1; fi
repos=/var/lib/docker/image/overlay2/repositories.json
if [ -s "$repos" ] && grep -q '"Repositories":{"' "$repos"; then
  echo "the box's Docker holds images: $(cat "$repos")" >&2; exit 1
fi
sudo_path=$(sudo -n sh -c 'echo $PATH')
if [ "$sudo_path" != /sbin:/bin:/usr/sbin:/usr/bin ]; then
  echo "sudo's PATH is $sudo_path, not CentOS 7's /sbin:/bin:/usr/sbin:/usr/bin" >&2; exit 1
fi
# Booted through GRUB with the box's command line: AppArmor off (Docker needs it off or a parser).
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo N)" = Y ]; then
  echo "AppArmor is enabled in the box: Docker cannot start unprivileged containers" >&2; exit 1
fi
# Neither etcd nor Docker runs until the guide configures them.
for unit in etcd docker; do
  if systemctl is-enabled --quiet "$unit"; then echo "$unit is enabled in the image" >&2; exit 1; fi
done
# Units as on CentOS 7.9 (packer/lab-node/scripts/centos-units.sh): Docker and etcd without a SysV
# script, host keys from their own unit, which made this boot's.
for name in docker etcd; do
  if [ -e "/etc/init.d/$name" ]; then echo "/etc/init.d/$name is in the box: CentOS 7's package has none" >&2; exit 1; fi
done
if [ "$(systemctl show -p Result --value ssh-keygen.service)" != success ]; then
  echo "ssh-keygen.service did not make this boot's host keys" >&2; exit 1
fi
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
# The build boot's DHCP lease holds a DUID: nodes sharing it would share one client id.
rm -f /var/lib/dhcp/*.leases
