"""The host's calicoctl (calico_double/calicoctl.sh): the script on the host's python3 (3.7+),
else the same script, mounted from the host, in a throwaway container of the double's image
(which ships no calicoctl, like calico/node:v2.6.1), with calicoctl's whole environment; and
`node` commands refused to non-root either way, in calicoctl v1.6.1's words.

The variables calicoctl v1.6.1 reads are libcalico-go v1.x's CalicoAPIConfigSpec envconfig
tags (lib/api/client_config.go): DATASTORE_TYPE, ETCD_SCHEME, ETCD_AUTHORITY, ETCD_ENDPOINTS,
ETCD_USERNAME, ETCD_PASSWORD, ETCD_KEY_FILE, ETCD_CERT_FILE, ETCD_CA_CERT_FILE.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from calicolab.core.paths import ROOT
from calicolab.infra import mirror

WRAPPER = ROOT / "calico_double" / "calicoctl.sh"
CALICOCTL_ENV = ["DATASTORE_TYPE", "ETCD_SCHEME", "ETCD_AUTHORITY", "ETCD_ENDPOINTS", "ETCD_USERNAME",
                 "ETCD_PASSWORD", "ETCD_KEY_FILE", "ETCD_CERT_FILE", "ETCD_CA_CERT_FILE"]
IN_IMAGE = "/usr/local/lib/calico-double/calicoctl"


def _host(tmp_path: Path, script: bool = True, python: str | None = "3.11") -> tuple[Path, dict[str, str]]:
    """A /usr/local-like tree with the wrapper, and a PATH whose docker and python3 say how they
    were called (python3 answers the version check as `python` says: None = no python3)."""
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "calicoctl"
    shutil.copy(WRAPPER, wrapper)
    if script:
        (tmp_path / "lib" / "calico-double").mkdir(parents=True)
        (tmp_path / "lib" / "calico-double" / "calicoctl").write_text("# the double's script\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "docker").write_text('#!/bin/sh\necho "docker $*"\n')
    if python is not None:
        code = 1 if python.startswith(("2.", "3.6")) else 0  # the wrapper's 3.7+ check
        (tools / "python3").write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit {code}; fi\necho "python3 $*"\n')
    for tool in tools.iterdir():
        tool.chmod(0o755)
    # sh, sed and id from the system; no python3 there unless the test gives one.
    system = tmp_path / "system"
    system.mkdir()
    for tool in ("sh", "sed", "id", "dirname", "tail"):
        (system / tool).symlink_to(shutil.which(tool))
    return wrapper, {"PATH": f"{tools}:{system}", "CALICO_DOUBLE_IMAGE": "calicolab/calico-node-double:v2.6.1"}


def _run(wrapper: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(wrapper), *args], env=env, capture_output=True, text=True, timeout=20, check=False)


def test_runs_on_the_hosts_python_when_it_is_3_7_or_later(tmp_path) -> None:
    wrapper, env = _host(tmp_path)
    seen = _run(wrapper, env, "get", "node").stdout.strip()
    assert seen == f"python3 {tmp_path}/lib/calico-double/calicoctl get node"


@pytest.mark.parametrize("python", [None, "3.6"])
def test_otherwise_the_hosts_script_in_a_throwaway_container(tmp_path, python) -> None:
    wrapper, env = _host(tmp_path, python=python)
    seen = _run(wrapper, env, "get", "node").stdout.strip()
    assert seen.startswith("docker run --rm -i --net=host --pid=host -v /var/run/calico:/var/run/calico "
                           f"-v {tmp_path}/lib/calico-double/calicoctl:{IN_IMAGE}:ro ")
    # The image has no calicoctl: python3 runs the mounted script.
    assert seen.endswith(f"--entrypoint python3 calicolab/calico-node-double:v2.6.1 {IN_IMAGE} get node")


def test_the_container_gets_calicoctls_whole_environment(tmp_path) -> None:
    wrapper, env = _host(tmp_path, python=None)
    args = _run(wrapper, env, "get", "node").stdout.split()
    passed = [args[i + 1] for i, a in enumerate(args) if a == "-e"]
    assert sorted(passed) == sorted(CALICOCTL_ENV)  # `-e NAME`: passed only when set on the host


def test_tls_files_outside_etc_calico_are_mounted_once(tmp_path) -> None:
    wrapper, env = _host(tmp_path, python=None)
    certs = tmp_path / "pki"
    certs.mkdir()
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        (certs / name).write_text("x")
    env.update(ETCD_CA_CERT_FILE=str(certs / "ca.pem"), ETCD_CERT_FILE=str(certs / "client.pem"),
               ETCD_KEY_FILE=str(certs / "client-key.pem"))
    seen = _run(wrapper, env, "get", "node").stdout
    assert seen.count(f"-v {certs}:{certs}:ro ") == 1


def test_a_missing_script_is_one_line_naming_it(tmp_path) -> None:
    wrapper, env = _host(tmp_path, script=False)
    res = _run(wrapper, env, "get", "node")
    assert res.returncode == 1 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1
    assert "lib/calico-double/calicoctl" in res.stderr and "provision" in res.stderr


def test_node_commands_need_root(tmp_path) -> None:
    wrapper, env = _host(tmp_path)
    (tmp_path / "tools" / "id").write_text("#!/bin/sh\necho 1000\n")  # a user, whoever runs the test
    (tmp_path / "tools" / "id").chmod(0o755)
    assert _run(wrapper, env, "node", "status").stdout.strip() == "Need super user privileges: Operation not permitted"
    assert _run(wrapper, env, "get", "node").stdout.startswith("python3 ")  # `get` needs no root


def test_the_image_ships_no_calicoctl() -> None:
    # calico/node:v2.6.1 has no calicoctl: projectcalico/calico@v2.6.1 calico_node/Makefile:68
    # NODE_CONTAINER_BINARIES=startup allocate-ipip-addr calico-felix bird calico-bgp-daemon confd
    # libnetwork-plugin, copied in by the Dockerfile's `COPY filesystem /`.
    dockerfile = (ROOT / "calico_double" / "Dockerfile").read_text()
    copies = [line for line in dockerfile.splitlines() if line.startswith(("COPY", "ADD"))]
    assert copies and not any("calicoctl" in line for line in copies)


def _served(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The local mirror's calicoctl release file, installed alone as provisioning installs a
    downloaded calicoctl: no script beside it."""
    wrapper, env = _host(tmp_path, script=False)
    wrapper.write_text(mirror.self_contained_calicoctl())
    system = Path(env["PATH"].split(":")[1])
    for tool in ("grep", "cksum", "cut", "mkdir", "mv"):
        (system / tool).symlink_to(shutil.which(tool))
    return wrapper, {**env, "CALICOCTL_DOUBLE_CACHE": str(tmp_path / "cache")}


def test_the_served_single_file_carries_and_runs_the_doubles_script(tmp_path) -> None:
    # On a mirror lab the image has no calicoctl and nothing is installed beside the download:
    # the single file extracts the very script the project ships, once, and runs it.
    wrapper, env = _served(tmp_path)
    seen = _run(wrapper, env, "get", "node").stdout.strip()
    (extracted,) = (tmp_path / "cache").iterdir()
    assert seen == f"python3 {extracted} get node"
    assert extracted.read_text() == (ROOT / "calico_double" / "calicoctl").read_text()
    assert _run(wrapper, env, "get", "node").stdout.strip() == seen  # the same copy the next time
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_the_plain_wrapper_without_its_script_says_so(tmp_path) -> None:
    wrapper, env = _host(tmp_path, script=False)
    res = _run(wrapper, env, "get", "node")
    assert res.returncode == 1 and "calicoctl script is missing" in res.stderr


def _calico_node(tmp_path: Path, running: str, exec_rc: int = 0) -> None:
    """The fake docker as a host whose calico-node container is `running` ("true"/"false"); an
    exec prints how it was called and the script it was fed, and exits `exec_rc`."""
    (tmp_path / "tools" / "docker").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = inspect ]; then echo {running}; exit 0; fi\n'
        f'if [ "$1" = exec ]; then echo "docker $*"; while IFS= read -r line; do echo "$line"; done; '
        f'exit {exec_rc}; fi\n'
        'echo "docker $*"\n')


def test_node_status_runs_inside_a_running_calico_node_on_its_python3(tmp_path) -> None:
    # No container made: an exec answers at once, where a `docker run` stalls for a minute while
    # Docker's cluster store has no quorum (measured on the lab: 63 s); the real binary answers.
    wrapper, env = _host(tmp_path, python=None)
    _calico_node(tmp_path, "true")
    res = _run(wrapper, env, "node", "status")
    assert res.returncode == 0
    assert res.stdout == "docker exec -i calico-node python3 - node status\n# the double's script\n"
    # The datastore commands need the host's /etc/calico and TLS files: a throwaway container.
    assert _run(wrapper, env, "get", "node").stdout.startswith("docker run --rm -i --net=host --pid=host ")


@pytest.mark.parametrize(("running", "exec_rc"), [("false", 0), ("true", 127), ("true", 126)])
def test_node_status_elsewhere_runs_in_a_throwaway_container(tmp_path, running, exec_rc) -> None:
    # calico-node stopped, or its image without python3 to run the script (exec: 127 or 126).
    wrapper, env = _host(tmp_path, python=None)
    _calico_node(tmp_path, running, exec_rc)
    seen = _run(wrapper, env, "node", "status").stdout.splitlines()[-1]
    assert seen.startswith("docker run --rm -i --net=host --pid=host ")
    assert seen.endswith(f"{IN_IMAGE} node status")


def test_node_status_inside_calico_node_keeps_the_scripts_exit_code(tmp_path) -> None:
    # "Calico process is not running." is exit 1 (felix gone from a running container): said,
    # not retried in a throwaway container, which would see the same processes.
    wrapper, env = _host(tmp_path, python=None)
    _calico_node(tmp_path, "true", exec_rc=1)
    res = _run(wrapper, env, "node", "status")
    assert res.returncode == 1 and "docker run" not in res.stdout
