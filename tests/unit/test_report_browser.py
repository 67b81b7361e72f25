"""The run page as a person sees it: opened in headless Chromium, screenshotted, and checked on
the DOM the browser rendered.

The inputs are real run outputs (tests/unit/fixtures/runs/): `passing` is a lab `invoke e2e
--suite checks` (read-only checks and fault injection), `failing` an `invoke verify --suite
read-only` on that cluster after node1's line was removed from node2's /etc/hosts, so one check
failed through the real lifecycle, with its artifacts (a few of them kept). The page is made from
them the way `invoke report` makes it. The connectivity matrix has no producer yet: one sample
step in run_data's documented shape is added to show that the cells render.
"""

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from calicolab.report import pages

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package "
                                "(`invoke setup` installs it; apt-get install chromium)")
SAMPLE_CONNECTIVITY = ('[{"step": "after provision", "rows": ['
                       '{"src": "A", "dst": "B", "proto": "icmp", "expected": "ok", "seen": "ok"},'
                       '{"src": "B", "dst": "A", "proto": "icmp", "expected": "ok", "seen": "blocked"}]}]')


class Dom(HTMLParser):
    """Text by element id and by class, and every element's attributes, of the rendered DOM."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[dict[str, str]] = []
        self.text: dict[int, list[str]] = {}
        self._open: list[int] = []
        self.feed(markup)

    VOID = {"br", "meta", "link", "img", "input", "hr", "rect", "line"}

    def handle_starttag(self, tag, attrs):
        self.elements.append({"tag": tag, **{k: v or "" for k, v in attrs}})
        if tag not in self.VOID:
            self._open.append(len(self.elements) - 1)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, **{k: v or "" for k, v in attrs}})

    def handle_endtag(self, tag):
        while self._open:
            if self.elements[self._open.pop()]["tag"] == tag:
                break

    def handle_data(self, data):
        for i in self._open:
            self.text.setdefault(i, []).append(data)

    def find(self, **attrs) -> list[int]:
        def matches(el: dict[str, str]) -> bool:
            return all((v in el.get(k.rstrip("_"), "").split()) if k == "class_" else el.get(k) == v
                       for k, v in attrs.items())
        return [i for i, el in enumerate(self.elements) if matches(el)]

    def text_of(self, index: int) -> str:
        return " ".join(" ".join(self.text.get(index, [])).split())


def _render(tmp_path: Path, kind: str, connectivity: bool = False) -> tuple[Dom, Path]:
    folder = tmp_path / kind
    shutil.copytree(FIXTURES / kind, folder)
    if connectivity:
        (folder / "connectivity.json").write_text(SAMPLE_CONNECTIVITY)
        run = folder / "run.json"  # the sample joins the run's own files
        run.write_text(run.read_text().replace('"sources": [', '"sources": [\n    "connectivity.json",', 1))
    page = pages.regenerate(folder)
    shot = folder / "screenshot.png"
    # --no-sandbox: Chromium refuses to run as root with its sandbox (the set-up runs as root).
    args = [CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600",
            f"--screenshot={shot}", "--dump-dom", page.as_uri()]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(tmp_path)})  # its profile in the tmp folder
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.stat().st_size > 10_000  # a page was painted, not a blank
    return Dom(proc.stdout), shot


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
