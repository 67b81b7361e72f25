"""Lifecycle JUnit and timings say which Calico was tested."""

import json
import re
import xml.etree.ElementTree as ET

from calicolab.report.junit import RunReport, StageRecord, add_junit_properties


def test_lifecycle_junit_and_timings(tmp_path):
    report = RunReport("calicolab", "docker", calico="double", stages=[
        StageRecord("up", 11.2, "passed"), StageRecord("verify", 3.0, "failed", "e2e tests failed\nmore")])
    xml_path, json_path = report.write(tmp_path)
    suite = ET.parse(xml_path).getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"provider": "docker", "calico": "double"}
    failures = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["verify"]
    data = json.loads(json_path.read_text())
    assert data["calico"] == "double" and data["passed"] is False and data["total_seconds"] == 14.2
    lines = report.table().splitlines()
    rows = [re.split(r" {2,}", line) for line in lines]
    assert rows[0] == ["stage", "result", "seconds"] and set(lines[1]) == {"-"} and lines[4] == lines[1]
    assert rows[2:4] == [["up", "passed", "11.2"], ["verify", "failed", "3.0"]]
    assert rows[5] == ["total", "FAILED", "14.2"]
    assert "not real Calico" in lines[6]


def test_properties_added_to_a_pytest_junit(tmp_path):
    path = tmp_path / "e2e.xml"
    path.write_text('<?xml version="1.0"?><testsuites><testsuite name="e2e" tests="0"/></testsuites>')
    add_junit_properties(path, {"calico": "upstream"})
    prop = ET.parse(path).getroot().find("testsuite/properties/property")
    assert (prop.get("name"), prop.get("value")) == ("calico", "upstream")


def test_a_refused_stage_is_a_failure_case_in_the_junit(tmp_path):
    # A task refused (a bad flag) did not do what it was asked: CI must see a failure, not a pass.
    report = RunReport("calicolab", "docker", stages=[StageRecord("preflight", 0.0, "refused", "unknown suite 'x'")])
    xml_path, _ = report.write(tmp_path)
    (case,) = ET.parse(xml_path).getroot().iter("testcase")
    assert case.find("failure") is not None and case.find("failure").get("message") == "unknown suite 'x'"
