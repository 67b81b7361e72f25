#!/bin/sh
# Run once in the double's build stage (calico_double/Dockerfile), then removed: not shipped.
#
# Every node receives this image and `docker load`s it; under TCG that costs about 0.19 s per MB
# and 5 ms per file in dockerd (docs/vms.md). The Debian base carries tools no agent, no wrapper
# and no check runs in calico-node (disk and filesystem tools, account and login tools,
# arptables/ebtables, iproute2's extras), and with them libraries nothing else links. They go,
# then every library that no remaining program or Python extension links, then the result is
# checked: every program still finds its libraries, and every tool the agents, the calicoctl
# wrapper and the suite's `docker exec calico-node` commands run is there.
set -eu
lib=/usr/lib/x86_64-linux-gnu

cd /usr/sbin
rm -f arpd badblocks blkdiscard blkid blkzone blockdev chcpu chmem ctrlaltdel debugfs dumpe2fs \
      e2freefrag e2fsck e2image e2label e2mmpstatus e2scrub e2scrub_all e2undo e4crypt e4defrag \
      faillock filefrag findfs fsck fsck.* fsfreeze fstrim getty agetty hwclock isosize ldattach \
      losetup mke2fs mkfs mkfs.* mkhomedir_helper mklost+found mkswap pivot_root readprofile \
      resize2fs rtcwake sfdisk fdisk cfdisk sulogin swaplabel swapoff swapon switch_root tune2fs \
      uuidd wipefs zramctl add-shell remove-shell update-shells installkernel shadowconfig pwck \
      grpck pwconv pwunconv grpconv grpunconv useradd userdel usermod groupadd groupdel groupmod \
      groupmems newusers chpasswd chgpasswd cppw cpgr vipw vigr adduser addgroup deluser delgroup \
      nologin runuser killall5 start-stop-daemon fstab-decode arptables* ebtables* rmt rmt-tar \
      tarcat chroot pam-auth-update pwhistory_helper unix_chkpwd unix_update tc tipc vdpa dcb \
      devlink bridge rtacct rtmon nfnl_osf
cd /usr/bin
rm -f lsblk lscpu lsipc lslocks lslogins lsmem lsns lsirq lsfd more mesg wall chfn chsh chage \
      expiry gpasswd newgrp passwd su login lastlog faillog sg diff diff3 sdiff cmp ptx pr numfmt \
      tsort factor shred csplit fmt fold od pinky users who whoami dir vdir stty tty chcon runcon \
      mcookie namei whereis fincore fallocate ionice taskset setarch linux32 linux64 i386 x86_64 \
      uclampset choom setpriv setsid setterm script scriptlive scriptreplay last lastb utmpdump col \
      colcrt colrm column hexdump look rev ul ipcmk ipcrm ipcs prlimit renice unshare nsenter wdctl \
      flock getopt logger rename.ul chrt cal ncal infocmp tic toe tput tset clear reset captoinfo \
      infotocap pldd getconf iconv locale localedef gencat zdump catchsegv sotruss sprof tzselect \
      savelog ischroot mt mt-gnu gzexe zcmp zdiff zegrep zfgrep zforce zgrep zless zmore znew \
      uncompress bashbug rdma ss addpart delpart partx resizepart
rm -rf "$lib/security" "$lib/krb5" "$lib/tc"

# What the remaining programs and Python's extension modules link, by resolved path.
needed=$(mktemp)
find /usr/bin /usr/sbin /usr/lib/python3* "$lib/xtables" -type f 2>/dev/null | while read -r f; do
    ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | xargs readlink -f | sort -u > "$needed"
find "$lib" -maxdepth 1 -name '*.so*' \( -type f -o -type l \) | while read -r f; do
    case "$f" in
        # The loader and libc, and what glibc loads by name: NSS modules (getaddrinfo,
        # getpwnam) and libgcc_s (pthread_exit's unwinding, in Python's threads).
        */ld-linux*|*/libc.so*|*/libnss_*|*/libgcc_s*|*/libresolv*) continue ;;
    esac
    grep -qx "$(readlink -f "$f")" "$needed" || rm -f "$f"
done
find "$lib" -maxdepth 1 -xtype l -delete
rm -f "$needed"

# Every program still finds its libraries ...
missing=$(find /usr/bin /usr/sbin /usr/lib/python3* "$lib" -type f 2>/dev/null | while read -r f; do
    ldd "$f" 2>/dev/null | grep -q 'not found' && echo "$f"; done || true)
if [ -n "$missing" ]; then echo "slim_rootfs: libraries gone from under: $missing" >&2; exit 1; fi
# ... and every tool that runs in calico-node is there: the agents' (felix_dataplane, confd,
# main), the calicoctl wrapper's, and the suite's `docker exec calico-node sh -c ...` commands.
for tool in sh bash python3 ip ipset conntrack iptables iptables-save iptables-restore \
            iptables-legacy iptables-legacy-save iptables-legacy-restore iptables-nft \
            iptables-nft-save iptables-nft-restore ip6tables ip6tables-save ip6tables-restore \
            bird bird6 birdc birdc6 sysctl ps pgrep pkill kill cat date sleep test timeout grep sed \
            awk cut tr head tail wc sort mkdir rm mv cp ln ls chmod touch readlink hostname env; do
    command -v "$tool" >/dev/null || { echo "slim_rootfs: $tool is gone" >&2; exit 1; }
done
