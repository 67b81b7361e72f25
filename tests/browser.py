"""A page as a person sees it: opened in Debian's headless Chromium, read back from the DOM the
browser rendered. One helper for every test that looks at the run page."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MISSING = "needs Debian's chromium package (`invoke setup --for tests` installs it; apt-get install chromium)"


class Dom(HTMLParser):
    """Every element's attributes, and the text inside each, of the rendered DOM."""

    VOID = {"br", "meta", "link", "img", "input", "hr", "rect", "line"}

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[dict[str, str]] = []
        self.text: dict[int, list[str]] = {}
        self._open: list[int] = []
        self.feed(markup)

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
        """Indexes of the elements with these attributes (class_: one of its classes)."""
        def matches(el: dict[str, str]) -> bool:
            return all((v in el.get(k.rstrip("_"), "").split()) if k == "class_" else el.get(k) == v
                       for k, v in attrs.items())
        return [i for i, el in enumerate(self.elements) if matches(el)]

    def having(self, attr: str, cls: str | None = None) -> list[dict[str, str]]:
        """The elements carrying an attribute (and a class)."""
        return [e for e in self.elements if attr in e and (cls is None or cls in e.get("class", "").split())]

    def text_of(self, index: int) -> str:
        return " ".join(" ".join(self.text.get(index, [])).split())

    def text_in(self, element: dict[str, str]) -> str:
        return self.text_of(self.elements.index(element))


def open_page(page: Path, home: Path, screenshot: Path | None = None, timeout: float = 120) -> Dom:
    """Chromium's rendered DOM of a local page (and a screenshot); its profile lives in `home`."""
    assert CHROMIUM, MISSING
    args = [CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600",
            "--dump-dom", page.as_uri()]
    if screenshot:
        args.insert(-2, f"--screenshot={screenshot}")
    if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox (the set-up runs as root)
        args.insert(1, "--no-sandbox")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env={**os.environ, "HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Dom(proc.stdout)
