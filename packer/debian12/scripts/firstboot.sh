#!/bin/sh
# The image's first boot (init=, straight from the kernel): install GRUB on the disk it booted
# from, print a marker the builder waits for, power off. Removes itself.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -o remount,rw /
if grub-install --target=i386-pc /dev/vda && update-grub; then
  rm -f /usr/local/sbin/calicolab-firstboot
  sync
  echo CALICOLAB-FIRSTBOOT-OK
else
  echo CALICOLAB-FIRSTBOOT-FAILED
fi
sync
# Power off; the request is asynchronous, and init must not exit meanwhile (a panic).
echo o > /proc/sysrq-trigger
while :; do sleep 1; done
