"""The run page as a person sees it: opened in headless Chromium, screenshotted, and checked on
the DOM the browser rendered.

The inputs are real run outputs (tests/unit/fixtures/runs/): `passing` is a lab `invoke e2e
--suite checks` (read-only checks and fault injection), `failing` an `invoke verify --suite
read-only` on that cluster after node1's line was removed from node2's /etc/hosts, so one check
failed through the real lifecycle, with its artifacts (a few of them kept). The page is made from
them the way `invoke report` makes it. The connectivity matrix has no producer yet: one sample
step in run_data's documented shape is added to show that the cells render.
"""

import shutil
from pathlib import Path

import browser
import pytest

from calicolab.report import pages

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
pytestmark = pytest.mark.skipif(browser.CHROMIUM is None, reason=browser.MISSING)
SAMPLE_CONNECTIVITY = ('[{"step": "after provision", "rows": ['
                       '{"src": "A", "dst": "B", "proto": "icmp", "expected": "ok", "seen": "ok"},'
                       '{"src": "B", "dst": "A", "proto": "icmp", "expected": "ok", "seen": "blocked"}]}]')


def _render(tmp_path: Path, kind: str, connectivity: bool = False) -> tuple[browser.Dom, Path]:
    folder = tmp_path / kind
    shutil.copytree(FIXTURES / kind, folder)
    if connectivity:
        (folder / "connectivity.json").write_text(SAMPLE_CONNECTIVITY)
        run = folder / "run.json"  # the sample joins the run's own files
        run.write_text(run.read_text().replace('"sources": [', '"sources": [\n    "connectivity.json",', 1))
    page = pages.regenerate(folder)
    shot = folder / "screenshot.png"
    dom = browser.open_page(page, tmp_path, screenshot=shot, timeout=60)
    assert shot.stat().st_size > 10_000  # a page was painted, not a blank
    return dom, shot


def test_passing_run_page_in_a_browser(tmp_path):
    dom, _ = _render(tmp_path, "passing")
    (verdict,) = dom.find(id="verdict")
    assert dom.elements[verdict]["data-verdict"] == "passed"
    assert dom.text_of(verdict).startswith("PASSED every stage passed; 57 tests passed, 14 skipped, none failed")
    assert dom.find(id="failures") == []
    assert dom.find(id="connectivity") == []  # no data, no section
    (timeline,) = dom.find(id="timeline")
    bars = {dom.elements[i]["data-label"] for i in dom.find(tag="g", class_="bar")}
    assert {"provision", "idempotence", "verify", "read-only checks", "fault injection"} <= bars
    assert "test_killed_bird_is_named_and_bgp_comes_back" in bars  # the fault tests, one by one
    assert "the project's Calico double (not real Calico)" in dom.text_of(dom.find(id="calico")[0])


def test_failing_run_page_in_a_browser(tmp_path):
    dom, _ = _render(tmp_path, "failing", connectivity=True)
    (verdict,) = dom.find(id="verdict")
    assert dom.elements[verdict]["data-verdict"] == "failed"
    assert "FAILED failed at verify; 1 of 66 tests failed: node2: /etc/hosts entry for node1" in dom.text_of(verdict)
    # Failures come first, right under the verdict, with the assertion helpers' text.
    sections = [el.get("id") for el in dom.elements if el["tag"] == "section"]
    assert sections[:3] == ["verdict", "failures", "tested"]
    (card,) = dom.find(class_="test-failure")
    assert dom.elements[card]["data-test"] == "test_etc_hosts_names_every_node[node2]"
    text = dom.text_of(card)
    assert "expected 192.168.237.131 node1" in text and "seen no entry" in text
    assert "likely cause the /etc/hosts step did not run or the file was rewritten" in text
    links = [dom.elements[i]["href"] for i in dom.find(tag="a") if "href" in dom.elements[i]]
    summary = "artifacts/hosts.test_hosts.py.test_etc_hosts_names_every_node-node2/SUMMARY.txt"
    assert summary in links and (tmp_path / "failing" / summary).is_file()
    # The fault-injection JUnit in the folder is an earlier run's: not on this page.
    assert "e2e-disruptive.xml" not in dom.text_of(dom.find(id="tests")[0])
    cells = {(dom.elements[i]["data-src"], dom.elements[i]["data-dst"]): dom.elements[i]["class"]
             for i in dom.find(tag="td", class_="cell")}
    assert cells == {("A", "B"): "cell ok", ("B", "A"): "cell bad"}
    assert dom.find(id="timeline")
