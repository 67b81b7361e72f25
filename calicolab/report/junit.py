"""Lifecycle reports: a JUnit file of the stages and a timing table, also as JSON."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from calicolab.core.state import calico_label
from calicolab.core.tables import Column, render


def add_junit_properties(xml_path: Path, properties: dict[str, str]) -> None:
    """Add suite properties to a JUnit file written by another tool (pytest under xdist
    cannot record suite properties itself)."""
    tree = ET.parse(xml_path)
    suites = [tree.getroot()] if tree.getroot().tag == "testsuite" else tree.getroot().findall("testsuite")
    for suite in suites:
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        for name, value in properties.items():
            ET.SubElement(props, "property", name=name, value=value)
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)


@dataclass
class StageRecord:
    name: str
    seconds: float = 0.0
    status: str = "pending"  # passed | failed | refused | skipped | pending
    detail: str = ""
    attachments: list[str] = field(default_factory=list)  # failure artifacts (calicolab/report/artifacts.py)
    started: float = 0.0  # epoch seconds, for the run page's timeline


@dataclass
class RunReport:
    cluster: str
    provider: str
    calico: str = "unknown"  # "upstream" or "double": which Calico was tested, by inspection of what ran
    calico_seen: str = ""  # what the inspection saw: image, digest
    stages: list[StageRecord] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    @property
    def passed(self) -> bool:
        return all(s.status in ("passed", "skipped") for s in self.stages)

    @property
    def total_seconds(self) -> float:
        return round(sum(s.seconds for s in self.stages), 1)

    def table(self) -> str:
        rows = [(s.name, s.status, f"{s.seconds:.1f}") for s in self.stages]
        total = ("total", "passed" if self.passed else "FAILED", f"{self.total_seconds:.1f}")
        body = render(("stage", "result", Column("seconds", align="right")), rows, footer=[total])
        seen = f" [{self.calico_seen}]" if self.calico_seen else ""
        return f"{body}\ncalico tested: {self.calico_label()}{seen}"

    def calico_label(self) -> str:
        return calico_label(self.calico)

    def to_json(self) -> dict:
        return {"cluster": self.cluster, "provider": self.provider, "calico": self.calico,
                "calico_seen": self.calico_seen,
                "passed": self.passed, "total_seconds": self.total_seconds,
                "stages": [asdict(s) for s in self.stages]}

    def write(self, folder: Path, stem: str = "lifecycle") -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        cases = []
        for s in self.stages:
            case = TestCase(s.name, classname=f"{self.cluster}.lifecycle", elapsed_sec=s.seconds)
            if s.status in ("failed", "refused"):  # a refused task did not do what it was asked
                case.add_failure_info(message=s.detail.splitlines()[0] if s.detail else s.status,
                                      output=s.detail)
            elif s.status in ("skipped", "pending"):
                case.add_skipped_info(s.detail or "not run")
            if s.attachments:  # Jenkins (junit-attachments) and GitLab link these from the case
                case.stdout = "\n".join(f"[[ATTACHMENT|{p}]]" for p in s.attachments)
            cases.append(case)
        suite = TestSuite(f"{self.cluster} lifecycle", cases,
                          properties={"provider": self.provider, "calico": self.calico,
                                      **({"calico_seen": self.calico_seen} if self.calico_seen else {})})
        xml_path = folder / f"{stem}.xml"
        xml_path.write_text(to_xml_report_string([suite]))
        json_path = folder / "timings.json"
        json_path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return xml_path, json_path
