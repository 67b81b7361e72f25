"""Where the programs the suite itself installs on a node live, for commands run through sudo.

Every node command runs as `sudo -n sh -c "<cmd>"` (calicolab/core/remote.py), so its PATH is
sudo's `secure_path`, not the SSH user's. CentOS 7.9's /etc/sudoers (sudo 1.8.23) sets
`Defaults secure_path = /sbin:/bin:/usr/sbin:/usr/bin`; Debian's adds /usr/local/sbin and
/usr/local/bin. A program installed outside those four folders must be called by its absolute
path, or it exits 127 ("not found") on CentOS while it works on Debian.

What the suite installs and where (one row each, the reason the others stay bare):
- calicoctl: /usr/local/bin/calicoctl (the guide's place; the real v1.6.1 binary or the double's
  wrapper, provision/calico.py). Outside secure_path: always called as CALICOCTL below.
- etcd, etcdctl: /usr/bin (CentOS extras' etcd rpm; the upstream archive is installed into
  /usr/bin by provision/centos.py; Debian's etcd-server/etcd-client packages): inside secure_path.
- docker, dockerd: /usr/bin (docker-ce rpm, Debian's docker.io): inside secure_path.
- the double's calicoctl script: /usr/local/lib/calico-double/calicoctl, run only by the wrapper
  (by its path relative to the wrapper), never by name.
"""

from __future__ import annotations

# CentOS 7.9's sudoers secure_path: the PATH every node command has there.
CENTOS7_SECURE_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"

CALICOCTL = "/usr/local/bin/calicoctl"

# The programs the suite installs outside CENTOS7_SECURE_PATH, by the name a command would use.
OUTSIDE_SECURE_PATH: dict[str, str] = {"calicoctl": CALICOCTL}


def calicoctl(args: str) -> str:
    """A calicoctl command line that runs under any sudo secure_path."""
    return f"{CALICOCTL} {args}"
