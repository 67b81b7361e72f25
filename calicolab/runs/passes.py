"""The verify stage's test passes: which e2e folders each pass runs, how, and what its pytest
exit code means.

A pass is chosen by folder (e2e/<folder>), never by a marker expression alone: a folder that
lost its tests fails at collection (exit 5), a renamed marker fails under --strict-markers,
and e2e/conftest.py stops a test whose marker does not match its folder. Exit 5 is accepted
only when the user narrowed the run (--pytest-args, e.g. -k), and then it is said.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from calicolab.core import state
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.core.state import calico_label, running_config
from calicolab.report.junit import add_junit_properties

E2E = ROOT / "e2e"
NO_TESTS = 5  # pytest.ExitCode.NO_TESTS_COLLECTED


@dataclass(frozen=True)
class TestPass:
    name: str
    folders: tuple[str, ...]  # under e2e/
    parallel: bool  # read-only checks spread over workers; faults and upgrades run one by one
    junit: str
    options: tuple[str, ...] = ()  # extra pytest options for this pass
    snapshot: bool = False  # read once, check many (e2e/state_reads.py): only where no test breaks anything

    __test__ = False  # not a pytest test class, despite the name


# The guide's sections in order, then the read-only checks beside them.
READ_ONLY = TestPass("read-only checks", ("hosts", "etcd", "docker", "calico", "workloads", "tls", "security"),
                     True, "e2e.xml", snapshot=True)
# Each fault test prints its diagnosis: shown in the output (-rA) and JUnit's system-out.
FAULTS = TestPass("fault injection", ("faults",), False, "e2e-disruptive.xml",
                  ("-rA", "-o", "junit_logging=system-out"))
UPGRADES = TestPass("upgrade rehearsals", ("upgrade",), False, "e2e-upgrade.xml")
# What `--suite` runs in the verify stage, pass after pass on the same cluster.
SUITES: dict[str, tuple[TestPass, ...]] = {
    "checks": (READ_ONLY, FAULTS),
    "read-only": (READ_ONLY,),
    "upgrade": (READ_ONLY, UPGRADES,
                replace(READ_ONLY, name="read-only checks after the upgrades", junit="e2e-after-upgrade.xml")),
}


def suite_passes(suite: str) -> tuple[TestPass, ...]:
    if suite not in SUITES:
        raise UserError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    return SUITES[suite]


def command(cfg: ClusterConfig, test_pass: TestPass, extra: list[str], root: Path = E2E,
            command_log: Path | None = None) -> list[str]:
    xml = cfg.reports_path / test_pass.junit
    # Modules spread over workers; a module stays on one worker, so the tests that create
    # objects (workloads/test_network.py) share them.
    workers = ["-n", "auto", "--dist", "loadscope"] if test_pass.parallel else ["-n", "0"]
    # The project's configuration named outright: its registered markers make --strict-markers
    # refuse a misspelt or renamed one. The run folder's cluster.json and this task's plants are
    # options of e2e/conftest.py: nothing reaches the tests through the environment.
    return [sys.executable, "-m", "pytest", *(str(root / f) for f in test_pass.folders),
            "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
            "-p", "no:cacheprovider", "--tb=short", "--strict-markers", *workers,
            f"--junitxml={xml}", "-o", f"junit_suite_name={cfg.prefix}-{xml.stem}", *test_pass.options,
            "--cluster-json", str(cfg.run_path / "cluster.json"), *cfg.plants.options(),
            *(["--snapshot", str(cfg.run_path / f"snapshot-{xml.stem}.json")] if test_pass.snapshot else []),
            *(["--command-log", str(command_log)] if command_log else []), *extra]


def verdict(test_pass: TestPass, rc: int, extra: list[str]) -> tuple[bool, str]:
    """(passed, what to say) for a pass's pytest exit code."""
    if rc == 0:
        return True, ""
    if rc == NO_TESTS:
        if extra:
            return True, f"{test_pass.name}: no test selected by `{' '.join(extra)}` (narrowed by --pytest-args)"
        return False, (f"{test_pass.name} collected no tests from e2e/{{{','.join(test_pass.folders)}}}: "
                       "an empty pass is a failure")
    return False, f"{test_pass.name} (pytest exit {rc})"


def run_pytest(cfg: ClusterConfig, test_pass: TestPass, extra: list[str], root: Path = E2E,
               command_log: Path | None = None) -> int:
    cfg.reports_path.mkdir(parents=True, exist_ok=True)
    xml = cfg.reports_path / test_pass.junit
    rc = subprocess.run(command(cfg, test_pass, extra, root, command_log), cwd=str(ROOT)).returncode
    if xml.exists():
        run_state = state.read(cfg)
        source = run_state.get("calico_source", "unknown")
        # The versions the cluster runs now (an upgrade pass moves them on).
        current = running_config(cfg, {}).versions
        add_junit_properties(xml, {"calico": source, "calico_description": calico_label(source),
                                   "calico_seen": run_state.get("calico_seen", ""),
                                   "provider": cfg.provider, "etcd": current.etcd, "docker": current.docker})
    return rc
