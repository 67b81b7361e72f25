#!/bin/bash
# Zero the free space so the box compresses well. dd stops with "No space left" by design.
set -uo pipefail

for mount in / /boot; do
  dd if=/dev/zero of="${mount%/}/ZERO" bs=1M 2>/dev/null
  rm -f "${mount%/}/ZERO"
done

# Zero the swap partition too, keeping its UUID (fstab refers to it).
# (util-linux 2.23 on CentOS 7 has no `swapon --show`.)
swap=$(awk 'NR > 1 { print $1; exit }' /proc/swaps)
if [ -n "$swap" ]; then
  uuid=$(blkid -o value -s UUID "$swap")
  swapoff "$swap"
  dd if=/dev/zero of="$swap" bs=1M 2>/dev/null
  mkswap -U "$uuid" "$swap" >/dev/null
fi
sync
