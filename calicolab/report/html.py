"""The run page (`<reports>/index.html`), the index page of a matrix or a soak, and the history
page: one self-contained HTML file each (inline CSS and SVG, no script, nothing fetched at view
time), rendered from the run JSON of calicolab/report/run_data.py (its docstring has the shape).

A reader sees first the verdict in one coloured line with its reason, then the failures
(expected / seen / likely cause, the artifacts), then what was tested (versions, Calico, lane,
machine), the timeline, and every stage and test. Sections whose data the run has not (the
connectivity matrix, probe gaps, rehearsals, the doctor) are left out, not shown empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from calicolab.core.state import calico_label
from calicolab.report.run_record import judge, progress

STATUS_CLASS = {"passed": "ok", "ok": "ok", "PASS": "ok", "failed": "bad", "error": "bad", "FAIL": "bad",
                "crashed": "bad", "refused": "bad", "interrupted": "warn", "terminated": "warn",
                "skipped": "skip", "pending": "skip", "WARN": "warn", "running": "warn"}
HEADLINE = {"passed": "PASSED", "failed": "FAILED", "refused": "REFUSED", "interrupted": "INTERRUPTED",
            "terminated": "TERMINATED", "crashed": "CRASHED", "running": "IN PROGRESS"}

CSS = """
:root{--ok:#1a7f37;--ok-bg:#dafbe1;--bad:#cf222e;--bad-bg:#ffebe9;--warn:#9a6700;--warn-bg:#fff8c5;
--skip:#57606a;--skip-bg:#eaeef2;--line:#d0d7de;--muted:#57606a;--fg:#1f2328}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:0 20px 40px}
h1{font-size:15px;font-weight:600;margin:0;color:var(--muted)}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px}
.mono{word-break:break-all}
code,pre,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;margin:0}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.verdict{margin:0 -20px 18px;padding:18px 20px 16px;border-bottom:4px solid}
.verdict.ok{background:var(--ok-bg);border-color:var(--ok)}.verdict.bad{background:var(--bad-bg);border-color:var(--bad)}
.verdict.warn{background:var(--warn-bg);border-color:var(--warn)}
.verdict .word{font-size:34px;font-weight:800;letter-spacing:.02em;margin-right:14px}
.verdict.ok .word{color:var(--ok)}.verdict.bad .word{color:var(--bad)}.verdict.warn .word{color:var(--warn)}
.verdict .why{font-size:16px;font-weight:500}
.verdict .facts{margin-top:6px;color:var(--muted)}
.facts span+span:before{content:" · "}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 14px;margin:10px 0}
.fail{border-left:5px solid var(--bad)}
.fail .title{font-weight:600;font-size:14.5px}.fail .where{color:var(--muted);font-size:12.5px}
dl.eso{display:grid;grid-template-columns:max-content 1fr;gap:3px 12px;margin:10px 0 4px}
dl.eso dt{font-weight:600;color:var(--muted)}dl.eso dd{margin:0}
dd.expected{color:var(--ok)}dd.seen{color:var(--bad)}dd.cause{font-weight:500}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:10px}
.grid .card{margin:0}.grid h3{margin:0 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
td:first-child a{white-space:nowrap}
.long{overflow-wrap:anywhere}
th{background:#f6f8fa;font-weight:600;font-size:12.5px;color:var(--muted)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv{border:0;background:none}table.kv td{border:0;padding:1px 8px 1px 0}table.kv td:first-child{color:var(--muted)}
.pill{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.pill.ok{background:var(--ok-bg);color:var(--ok)}.pill.bad{background:var(--bad-bg);color:var(--bad)}
.pill.warn{background:var(--warn-bg);color:var(--warn)}.pill.skip{background:var(--skip-bg);color:var(--skip)}
tr.bad td{background:#fff5f5}
details>summary{cursor:pointer;color:var(--muted);margin:6px 0}
.muted{color:var(--muted)}
.files a{margin-right:10px;white-space:nowrap}
table.matrix{width:auto}table.matrix td,table.matrix th{text-align:center;min-width:110px}
td.cell{font-weight:600}td.cell.ok{background:var(--ok-bg);color:var(--ok)}
td.cell.bad{background:var(--bad-bg);color:var(--bad)}td.cell.blocked{background:var(--skip-bg);color:var(--skip)}
.keys li{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
svg text{font:11px system-ui,"DejaVu Sans",sans-serif}
.flag{color:var(--bad);font-weight:600}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def seconds(value: float | None, whole: bool = False) -> str:
    if value is None:
        return "-"
    if whole and value < 60:
        return f"{value:.0f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


def pill(status: str, text: str | None = None) -> str:
    return f'<span class="pill {STATUS_CLASS.get(status, "skip")}">{_e(text or status)}</span>'


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", numeric: Sequence[int] = (),
           row_classes: Sequence[str] | None = None) -> str:
    """Cells are HTML already (callers escape their text)."""
    ths = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(head))
    body = []
    for n, row in enumerate(rows):
        tds = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        rc = f' class="{row_classes[n]}"' if row_classes and row_classes[n] else ""
        body.append(f"<tr{rc}>{tds}</tr>")
    return f'<table class="{cls}"><thead><tr>{ths}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


# -- the run page ----------------------------------------------------------------------------
def run_page(data: dict[str, Any]) -> str:
    # The band is judged from what the page shows, never taken from the last task alone.
    data = {**data, "verdict": judge(data)["verdict"]}
    verdict = data["verdict"]
    title = f"{HEADLINE.get(verdict, verdict.upper())}: {data.get('cluster', '')} run {_when(data.get('started'))}"
    parts = [_verdict(data), _earlier(data), _failures(data), _what(data), _timeline_section(data), _stages(data),
             _tests(data), _connectivity(data), _probe_gaps(data), _bgp_drops(data), _upgrades(data), _drills(data),
             _doctor(data), _files(data)]
    return _page(title, "\n".join(p for p in parts if p))


def _counts(data: dict[str, Any]) -> dict[str, int]:
    tests = data.get("tests", [])
    return {s: sum(1 for t in tests if t["status"] == s) for s in ("passed", "failed", "error", "skipped")}


def _stage_name(stage: dict[str, Any]) -> str:
    """A stage as the reason names it: with the task that ran it when that is another one."""
    task = stage.get("task")
    return f"{stage['name']} (invoke {task})" if task and task != stage["name"] else stage["name"]


def reason(data: dict[str, Any]) -> str:
    """The verdict's reason in one line, from the same judgement as the verdict."""
    judged = judge(data)
    verdict = judged["verdict"]
    error = judged["exit"].get("error", "") or (data.get("exit") or {}).get("error", "")
    c = _counts(data)
    total = sum(c.values())
    done, planned = progress(data)
    if verdict in ("passed", "running"):
        skipped = f", {c['skipped']} skipped" if c["skipped"] else ""
        tests = f"{c['passed']} tests passed{skipped}, none failed" if total else ""
        if verdict == "running":
            return f"run in progress: {done} of {planned} stages done; nothing failed so far" + \
                (f" ({tests})" if tests else "")
        return f"every stage passed; {tests}" if total else "every stage passed"
    bits = []
    if verdict in ("interrupted", "terminated", "crashed") and error:
        bits.append(error.splitlines()[0] + (f" in invoke {judged['task']}" if judged["task"] else ""))
    if judged["failed_stages"]:
        bits.append(f"failed at {', '.join(dict.fromkeys(_stage_name(s) for s in judged['failed_stages']))}")
    bad = len(judged["bad_tests"])
    if bad:
        first = judged["bad_tests"][0]
        more = f" (and {bad - 1} more)" if bad > 1 else ""
        where = f"{first['name']}, invoke {first['task']}" if first.get("task") else first["name"]
        bits.append(f"{bad} of {total} tests failed: {headline_of(first)} ({where}){more}")
    if error and not bad and not bits:
        bits.append(error.splitlines()[0])
    if data.get("open"):
        bits.append(f"run in progress: {done} of {planned} stages done")
    return "; ".join(bits) or error or verdict


def _verdict(data: dict[str, Any]) -> str:
    judged = judge(data)
    verdict = judged["verdict"]
    cls = STATUS_CLASS.get(verdict, "bad")
    lane = data.get("lane") or {}
    tasks = data.get("tasks") or []
    code = judged["exit"].get("code", "?")
    facts = [f"{data.get('cluster', '')}", f"{lane.get('suite', '')} suite" if lane.get("suite") else "",
             f"calico: {data.get('calico', 'unknown')}", seconds(data.get("seconds")), _when(data.get("started")),
             ("tasks: " + ", ".join(t["task"] for t in tasks)) if len(tasks) > 1 else "",
             f"exit {code}" + (f" (invoke {judged['task']})" if len(tasks) > 1 and judged["task"] else "")]
    spans = "".join(f"<span>{_e(f)}</span>" for f in facts if f)
    return (f'<h1>calicolab run report</h1><section id="verdict" class="verdict {cls}" data-verdict="{_e(verdict)}">'
            f'<span class="word">{_e(HEADLINE.get(verdict, verdict.upper()))}</span>'
            f'<span class="why">{_e(_cut(reason(data), 320))}</span><div class="facts">{spans}</div></section>')


def _earlier(data: dict[str, Any]) -> str:
    """Earlier runs of this reports folder, moved aside (run_record.py): named, never mixed in."""
    runs = data.get("earlier") or []
    if not runs:
        return ""
    items = []
    for r in runs[:5]:
        verdict = r.get("verdict", "")
        items.append(f'<li><a href="{_e(r["page"])}">{_e(r["name"])}</a> {pill(verdict, HEADLINE.get(verdict))} '
                     f'<span class="muted">{_e(r.get("command", ""))}</span></li>')
    return (f'<section id="earlier"><div class="muted">not this run: earlier runs in this folder, moved aside'
            f'</div><ul>{"".join(items)}</ul></section>')


def _links(paths: list[str], limit: int = 40, open_: bool = True) -> str:
    if not paths:
        return ""
    by_folder: dict[str, list[str]] = {}
    for p in paths:
        folder, _, name = p.rpartition("/")
        by_folder.setdefault(folder, []).append(f'<a href="{_e(p)}">{_e(name)}</a>')
    rows = [f"<div><span class=\"muted\">{_e(folder)}/</span> {' '.join(links[:limit])}"
            f"{f' … {len(links) - limit} more' if len(links) > limit else ''}</div>"
            for folder, links in by_folder.items()]
    return (f'<details class="files"{" open" if open_ else ""}><summary>artifacts ({len(paths)} files)</summary>'
            f'{"".join(rows)}</details>')


def headline_of(test: dict[str, Any]) -> str:
    """A failure's first line without the exception's dotted class (e2e.expect.CheckFailed: ...)."""
    first = (test.get("message") or test.get("text") or "").splitlines()
    line = first[0] if first else test.get("status", "")
    name, sep, rest = line.partition(": ")
    return rest if sep and re.fullmatch(r"[\w.]+(Error|Failed|Exception|Failure)", name) else line


def _failures(data: dict[str, Any]) -> str:
    cards = []
    for t in data.get("tests", []):
        if t["status"] not in ("failed", "error"):
            continue
        eso = "".join(f'<dt>{label}</dt><dd class="{key}">{_e(t[key])}</dd>'
                      for key, label in (("expected", "expected"), ("seen", "seen"), ("cause", "likely cause"))
                      if t.get(key))
        headline = headline_of(t)
        body = f'<dl class="eso">{eso}</dl>' if eso else ""
        trace = f"<details><summary>pytest output</summary><pre>{_e(t.get('text', ''))}</pre></details>" \
            if t.get("text") else ""
        cards.append(f'<div class="card fail test-failure" data-test="{_e(t["name"])}">'
                     f'<div class="title">{_e(t["name"])}</div>'
                     f'<div class="where">{_e(t.get("classname", ""))} · {_e(t.get("junit", ""))} · '
                     f'{_e("invoke " + t["task"] + " · " if t.get("task") else "")}'
                     f'{seconds(t.get("seconds"))}</div><pre class="message">{_e(headline)}</pre>{body}'
                     f'{_links(t.get("attachments", []))}{trace}</div>')
    explained = bool(cards)
    for s in data.get("stages", []):
        if s.get("status") not in ("failed", "refused") or (explained and s["name"] == "verify"):
            continue  # a failed verify stage is the failed tests above
        cards.append(f'<div class="card fail stage-failure" data-stage="{_e(s["name"])}">'
                     f'<div class="title">stage {_e(_stage_name(s))} {_e(s["status"])}</div>'
                     f'<pre class="message">{_e(s.get("detail", ""))}</pre>{_links(s.get("attachments", []))}</div>')
    error = (data.get("exit") or {}).get("error", "")
    if not cards and data.get("verdict") not in (None, "passed", "running") and error:
        cards.append(f'<div class="card fail run-failure"><div class="title">{_e(data["verdict"])} before any '
                     f'stage finished</div><pre class="message">{_e(error)}</pre></div>')
    if not cards:
        return ""
    return f'<section id="failures"><h2>Failures ({len(cards)})</h2>{"".join(cards)}</section>'


def _what(data: dict[str, Any]) -> str:
    versions = data.get("versions") or {}
    asked, after = versions.get("asked") or {}, versions.get("after") or {}
    rows = []
    for comp in ("etcd", "docker", "calico", "calicoctl"):
        if comp in asked or comp in after:
            a, b = asked.get(comp, "-"), after.get(comp, asked.get(comp, "-"))
            rows.append((_e(comp), _e(a) if a == b else f"{_e(a)} → <b>{_e(b)}</b>"))
    members = versions.get("members") or []
    member_rows = "".join(f"<tr><td>{_e(m.get('node'))}</td><td>{_e(m.get('component'))} {_e(m.get('before'))} → "
                          f"{_e(m.get('after'))}</td></tr>" for m in members)
    vers = "".join(f"<tr><td>{c}</td><td class=\"mono\">{v}</td></tr>" for c, v in rows) + member_rows
    lane = data.get("lane") or {}
    lane_rows = [(k, lane.get(k)) for k in ("name", "suite", "prefix", "subnet", "provider", "etcd_tls",
                                             "destroy", "idempotence", "pytest_args") if lane.get(k) not in (None, "")]
    m = data.get("machine") or {}
    machine_rows = [("host", m.get("hostname")), ("os", m.get("os")), ("kernel", m.get("kernel")),
                    ("cpus", m.get("cpus")), ("memory", f"{m['memory_gb']} GiB" if m.get("memory_gb") else None),
                    ("load (1 min)", m.get("load_1min")), ("python", m.get("python"))]
    calico = data.get("calico", "unknown")
    seen = data.get("calico_seen") or ""

    def kv(items: Iterable[tuple[str, Any]]) -> str:
        return '<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>"
                                              for k, v in items if v not in (None, "")) + "</table>"

    return ('<section id="tested"><h2>What was tested</h2><div class="grid">'
            f'<div class="card" id="versions"><h3>Versions</h3><table class="kv">{vers}</table></div>'
            f'<div class="card" id="calico"><h3>Calico</h3><div><b>{_e(calico)}</b>: '
            f'{_e(data.get("calico_label") or calico_label(calico))}</div>'
            f'{f"<div class=mono>{_e(seen)}</div>" if seen else ""}'
            + ('<div class="muted">decided by inspecting what ran on the nodes</div>' if calico != "unknown" else "")
            + '</div>'
            f'<div class="card" id="lane"><h3>Lane</h3>{kv(lane_rows)}</div>'
            f'<div class="card" id="machine"><h3>Machine</h3>{kv(machine_rows)}</div></div></section>')


# -- timeline ---------------------------------------------------------------------------------
def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / step <= 12:
            return step
    return 7200


def timeline_rows(data: dict[str, Any]) -> list[tuple[str, list[dict]]]:
    """(row label, [{label, start, seconds, status}]) for the SVG, in drawing order."""
    rows: list[tuple[str, list[dict]]] = [("stages", [
        {"label": s["name"], "start": s.get("start") or 0.0, "seconds": s.get("seconds") or 0.0,
         "status": s.get("status", "")} for s in data.get("stages", []) if s.get("status") != "skipped"])]
    passes = [p for p in data.get("passes", []) if p.get("start") is not None]
    if passes:
        rows.append(("test passes", [{"label": p["name"], "start": p["start"], "seconds": p["seconds"],
                                      "status": "failed" if p["failures"] + p["errors"] else "passed"}
                                     for p in passes]))
    for p in passes:  # a pass run one test at a time: its tests in order (fault injection, rehearsals)
        tests = [t for t in data.get("tests", []) if _of_pass(t, p) and t.get("start") is not None]
        if tests:
            rows.append((p["name"], [{"label": t["name"], "start": t["start"], "seconds": t["seconds"],
                                      "status": t["status"]} for t in tests]))
    events: dict[str, list[dict]] = {}
    for ev in data.get("events", []):
        events.setdefault(str(ev.get("row", "events")), []).append(ev)
    for gap in data.get("probe_gaps", []):
        events.setdefault(f"probe gap {gap.get('direction', '')}", []).append(
            {"label": gap.get("step", ""), "start": gap.get("start"), "seconds": gap.get("seconds"),
             "status": "failed"})
    rows += [(name, [e for e in evs if e.get("start") is not None]) for name, evs in events.items()]
    return [(name, items) for name, items in rows if items]


def timeline_svg(data: dict[str, Any], width: int = 1140) -> str:
    rows = timeline_rows(data)
    if not rows:
        return ""
    end = max(float(i.get("start") or 0) + float(i.get("seconds") or 0) for _, items in rows for i in items)
    end = max(end, float(data.get("seconds") or 0), 1.0)
    left, right, row_h, top = 150, 12, 26, 22
    scale = (width - left - right) / end
    height = top + row_h * len(rows) + 8
    colour = {"ok": "#2da44e", "bad": "#cf222e", "warn": "#d4a72c", "skip": "#8c959f"}
    out = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="timeline of stages and tests">']
    step = _tick_step(end)
    t = 0.0
    while t <= end + 1e-6:
        x = left + t * scale
        tick = seconds(t, whole=True)
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#eaeef2"/>'
                   f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill="#57606a">{tick}</text>')
        t += step
    for n, (name, items) in enumerate(rows):
        y = top + n * row_h
        out.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" fill="#1f2328">{_e(name[:24])}</text>')
        for item in items:
            x = left + float(item.get("start") or 0) * scale
            w = max(float(item.get("seconds") or 0) * scale, 2.0)
            fill = colour.get(STATUS_CLASS.get(str(item.get("status", "")), "skip"), "#8c959f")
            label = str(item.get("label", ""))
            tip = f"{label}: {item.get('status', '')} {seconds(item.get('seconds'))} at {seconds(item.get('start'))}"
            out.append(f'<g class="bar" data-label="{_e(label)}"><title>{_e(tip)}</title>'
                       f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" rx="3" fill="{fill}" '
                       f'fill-opacity="0.85"/>')
            fits = int((w - 8) / 6.5)  # characters that fit inside the bar
            short = label.removeprefix("test_")
            if fits >= 4:
                short = short if len(short) <= fits else short[:fits - 1] + "…"
                out.append(f'<text x="{x + 4:.1f}" y="{y + 16}" fill="#fff">{_e(short)}</text>')
            out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _timeline_section(data: dict[str, Any]) -> str:
    svg = timeline_svg(data)
    if not svg:
        return ""
    return (f'<section id="timeline-section"><h2>Timeline</h2><div class="card">{svg}'
            '<div class="muted">seconds since the run started; hover a bar for its name and duration</div>'
            '</div></section>')


# -- stages and tests -------------------------------------------------------------------------
def _stages(data: dict[str, Any]) -> str:
    stages = data.get("stages", [])
    if not stages:
        return ""
    tasks = any(s.get("task") for s in stages)
    rows = [(f'<span class="stage" data-stage="{_e(s["name"])}" data-task="{_e(s.get("task", ""))}" '
             f'data-status="{_e(s.get("status", ""))}">{_e(s["name"])}</span>',
             *((f'<code>invoke {_e(s.get("task", ""))}</code>',) if tasks else ()),
             pill(s.get("status", "")), seconds(s.get("seconds")),
             (f"<pre>{_e(s.get('detail', ''))}</pre>" if s.get("detail") else "")
             + _links(s.get("attachments", []), open_=False)) for s in stages]
    total = sum(float(s.get("seconds") or 0) for s in stages)
    rows.append(("<b>total</b>", *(("",) if tasks else ()), pill(data.get("verdict", "")),
                 f"<b>{seconds(total)}</b>", ""))
    head = ("stage", "task", "result", "duration", "detail") if tasks else ("stage", "result", "duration", "detail")
    table = _table(head, rows, numeric=(3 if tasks else 2,))
    return f'<section id="stages"><h2>Stages</h2>{table}</section>'


def _of_pass(test: dict[str, Any], pass_: dict[str, Any]) -> bool:
    # A JUnit file's name repeats when a run verifies twice: the task tells the passes apart.
    return test["junit"] == pass_["junit"] and test.get("task_no") == pass_.get("task_no")


def _test_rows(tests: list[dict]) -> str:
    rows = [(pill(t["status"]), f"{_e(t['name'])}<div class=\"muted\">{_e(t['classname'])}</div>",
             seconds(t["seconds"]), _e(headline_of(t) if t.get("message") else ""))
            for t in tests]
    classes = ["bad" if t["status"] in ("failed", "error") else "" for t in tests]
    return _table(("result", "test", "duration", "message"), rows, numeric=(2,), row_classes=classes)


def _tests(data: dict[str, Any]) -> str:
    """Per pass: failed tests open, skipped and passed ones folded (with their count)."""
    tests = data.get("tests", [])
    if not tests:
        return ""
    out = ['<section id="tests"><h2>Tests</h2>']
    for p in data.get("passes", []):
        mine = [t for t in tests if _of_pass(t, p)]
        bad = [t for t in mine if t["status"] in ("failed", "error")]
        skipped = [t for t in mine if t["status"] == "skipped"]
        passed = sorted((t for t in mine if t["status"] == "passed"), key=lambda t: (t["classname"], t["name"]))
        summary = (f"{len(passed)} passed, {len(bad)} failed, {len(skipped)} skipped "
                   f"in {seconds(p['seconds'])}")
        task = f"invoke {p['task']}, " if p.get("task") else ""
        out.append(f'<h3 class="pass" data-junit="{_e(p["junit"])}" data-task="{_e(p.get("task", ""))}">'
                   f'{_e(p["name"])} <span class="muted">({_e(task)}{_e(p["junit"])}: {summary})</span></h3>')
        if bad:
            out.append(_test_rows(bad))
        for group, word in ((skipped, "skipped"), (passed, "passed")):
            if group:
                out.append(f'<details class="tests-{word}"><summary>{len(group)} {word} tests</summary>'
                           f"{_test_rows(group)}</details>")
    out.append("</section>")
    return "".join(out)


# -- data other checks add: connectivity, probe gaps ------------------------------------------
def _cell_class(expected: str, seen: str) -> str:
    if expected != seen:
        return "bad"
    return "blocked" if seen == "blocked" else "ok"


def _connectivity(data: dict[str, Any]) -> str:
    steps = data.get("connectivity") or []
    if not steps:
        return ""
    out = ['<section id="connectivity"><h2>Connectivity</h2>'
           '<div class="muted">row: from, column: to; each cell: protocol seen (expected when it differs)</div>']
    for step in steps:
        rows = step.get("rows", [])
        names = list(dict.fromkeys([r["src"] for r in rows] + [r["dst"] for r in rows]))
        cells: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            cells.setdefault((r["src"], r["dst"]), []).append(r)
        body = []
        for src in names:
            tds = [f"<th>{_e(src)}</th>"]
            for dst in names:
                found = cells.get((src, dst), [])
                if not found:
                    tds.append("<td class=\"muted\">·</td>")
                    continue
                worst = "bad" if any(r["expected"] != r["seen"] for r in found) else \
                    "blocked" if all(r["seen"] == "blocked" for r in found) else "ok"
                text = "<br>".join(
                    f"{_e(r['proto'])} {_e(r['seen'])}"
                    + (f" (expected {_e(r['expected'])})" if r["expected"] != r["seen"] else "") for r in found)
                attrs = f'data-src="{_e(src)}" data-dst="{_e(dst)}"'
                tds.append(f'<td class="cell {worst}" {attrs}>{text}</td>')
            body.append(f"<tr>{''.join(tds)}</tr>")
        head = "".join(f"<th>{_e(n)}</th>" for n in names)
        out.append(f'<h3>{_e(step.get("step", ""))}</h3><table class="matrix"><thead><tr><th>from \\ to</th>{head}'
                   f'</tr></thead><tbody>{"".join(body)}</tbody></table>')
    out.append("</section>")
    return "".join(out)


def _probe_gaps(data: dict[str, Any]) -> str:
    gaps = data.get("probe_gaps") or []
    if not gaps:
        return ""
    rows = [(_e(g.get("step")), _e(g.get("direction")), seconds(g.get("start")), seconds(g.get("seconds")))
            for g in gaps]
    return (f'<section id="probe-gaps"><h2>Probe gaps</h2>'
            f'{_table(("step", "direction", "at", "gap"), rows, numeric=(2, 3))}</section>')


# -- upgrades and the doctor ------------------------------------------------------------------
def _key_list(title: str, keys: list[str], cls: str) -> str:
    if not keys:
        return f'<div class="muted">{_e(title)}: none</div>'
    items = "".join(f"<li>{_e(k)}</li>" for k in keys)
    return (f'<details class="keys {cls}" {"open" if cls == "bad" else ""}><summary>{pill(cls, title)} '
            f'{len(keys)} key(s)</summary><ul>{items}</ul></details>')


def _upgrades(data: dict[str, Any]) -> str:
    rehearsals = data.get("upgrade") or []
    if not rehearsals:
        return ""
    out = ['<section id="upgrades"><h2>Upgrade rehearsals</h2>']
    for r in rehearsals:
        problems = r.get("problems") or []
        status = "failed" if problems else "passed"
        hops = [(_e(h.get("node")), f"{_e(h.get('before'))} → {_e(h.get('after'))}", seconds(h.get("seconds")),
                 _e(h.get("gate", ""))) for h in r.get("hops", [])]
        keys = r.get("keys") or {}
        during = r.get("during")
        traffic = ""
        if during and len(during) == 2:
            sent, got = during
            outage = (data.get("outages") or {}).get(f"{r.get('component')} upgrade outage", 0)
            traffic = (f"<div>background ping during the upgrade: {got}/{sent} replies, {sent - got} lost "
                       f"(~{outage} s without traffic)</div>")
        out.append(f'<div class="card rehearsal" data-component="{_e(r.get("component"))}">'
                   f'<h3>{_e(r.get("component"))} → {_e(r.get("target"))} {pill(status)}</h3>'
                   + "".join(f'<div class="flag">{_e(p)}</div>' for p in problems)
                   + (_table(("node", "version", "duration", "gate"), hops, numeric=(2,)) if hops else "")
                   + traffic + '<h3>Keyspace /calico and /docker</h3>'
                   + _key_list("expected changes", (keys.get("expected") or []) + (keys.get("deleted") or []), "ok")
                   + _key_list("new keys", keys.get("added") or [], "skip")
                   + _key_list("lost keys", keys.get("lost") or [], "bad")
                   + _key_list("changed unexpectedly", keys.get("changed") or [], "bad") + "</div>")
    out.append("</section>")
    return "".join(out)


def _bgp_drops(data: dict[str, Any]) -> str:
    """Every BGP session dropped in a measured window (faults.json, upgrade.json, drills.json),
    with its shape, the entry it was judged by, and BIRD's own lines."""
    found = [(f"fault: {(f.get('step') or {}).get('step', '')}", f.get("budget_entry", ""), d)
             for f in data.get("faults") or [] for d in f.get("bgp_drops") or []]
    found += [(f"rehearsal: {r.get('component')} → {r.get('target')}", r.get("budget_entry", ""), d)
              for r in data.get("upgrade") or [] for d in r.get("bgp_drops") or []]
    found += [(f"drill: {r.get('name')}", "", d) for r in data.get("drills") or [] for d in r.get("bgp_drops") or []]
    if not found:
        return ""
    out = ['<section id="bgp-drops"><h2>BGP sessions dropped</h2><p>Told from both nodes\' BIRD logs at debug '
           'level. Shapes A and B are Calico 2.6\'s connection collision (BIRD 1.6 bgp_incoming_connection; '
           'bgp_rx_open, Cease 7), fixed in Calico 3.4 (projectcalico/node 1183be5); any other drop is never '
           'excused.</p>']
    for where, entry, d in found:
        shape = f"shape {d.get('shape')}" if d.get("collision") else "not a collision"
        back = f", routes back after {d['outage_s']} s" if d.get("outage_s") is not None else ""
        lines = "\n".join([*(d.get("lines") or []), *(d.get("echo") or [])])
        out.append(f'<div class="card drop" data-shape="{_e(d.get("shape"))}"><h3>{_e(where)}: {_e(d.get("node"))} '
                   f'{_e(d.get("protocol"))} at {_e(d.get("at"))} '
                   f'{pill("passed" if d.get("collision") else "failed", shape)}</h3>'
                   f'<div>{_e(d.get("cause"))}{_e(back)}' + (f"; judged by {_e(entry)!s}" if entry else "")
                   + f'</div><pre>{_e(lines)}</pre></div>')
    out.append("</section>")
    return "".join(out)


def _drills(data: dict[str, Any]) -> str:
    drills = data.get("drills") or []
    if not drills:
        return ""
    out = ['<section id="drills"><h2>Drills: dwell, rollback, restore</h2>']
    for d in drills:
        problems = d.get("problems") or []
        rows = [(_e(c.get("what")), pill("passed" if c.get("ok") else "failed"), _e(c.get("seen")))
                for c in d.get("checks", [])]
        rows += [(_e(f.get("what")), pill("passed"), f"down {_e(f.get('down_s'))} s, healthy "
                  f"{_e(f.get('recovered_s'))} s after the start") for f in d.get("faults", [])]
        rows += [(_e(i.get("what")), pill("passed"), f"{_e(i.get('dropped'))} of {_e(i.get('seen'))} packets "
                  f"dropped over {_e(i.get('seconds'))} s") for i in d.get("impairments", [])]
        during = d.get("during") or [0, 0]
        out.append(f'<div class="card drill" data-drill="{_e(d.get("name"))}">'
                   f'<h3>{_e(d.get("name"))} {pill("failed" if problems else "passed")} '
                   f'{seconds(d.get("seconds"))}</h3>'
                   + "".join(f'<div class="flag">{_e(p)}</div>' for p in problems)
                   + _table(("observed", "result", "seen"), rows)
                   + f"<div>background ping across the drill: {_e(during[1])}/{_e(during[0])} replies; keys "
                     f"{_e(d.get('keys_before'))} before, {_e(d.get('keys_after'))} after</div></div>")
    out.append("</section>")
    return "".join(out)


def _doctor(data: dict[str, Any]) -> str:
    doctor = data.get("doctor")
    if not doctor:
        return ""
    findings = doctor.get("findings", [])
    rows = []
    for f in findings:
        diag = f.get("diagnosis") or {}
        rows.append((_e(f.get("check")), _e(f.get("node")), pill(f.get("result", "")), _e(f.get("seen")),
                     _e(diag.get("cause", "")), _e(diag.get("fix", ""))))
    classes = ["bad" if f.get("result") == "FAIL" else "" for f in findings]
    counts = doctor.get("counts") or {}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    return (f'<section id="doctor"><h2>Doctor <span class="muted">({_e(summary)})</span></h2>'
            f'{_table(("check", "node", "result", "seen", "likely cause", "fix"), rows, row_classes=classes)}'
            "</section>")


def _files(data: dict[str, Any]) -> str:
    files = data.get("files") or []
    if not files:
        return ""
    links = "".join(f'<a href="{_e(f)}">{_e(f)}</a>' for f in files)
    return f'<section id="files"><h2>Files</h2><div class="files">{links}</div></section>'


# -- index pages: a matrix's lanes, a soak's runs ---------------------------------------------
def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def index_page(title: str, summary: str, entries: list[dict[str, Any]], stage_names: Sequence[str]) -> str:
    """entries: {name, link, verdict, label, calico, tests, seconds, stages: {name: seconds}, error}."""
    failed = [e for e in entries if e.get("verdict") != "passed"]
    verdict = "passed" if entries and not failed else "failed"
    why = (f"{len(entries) - len(failed)} of {len(entries)} passed"
           + (f"; failed: {', '.join(e['name'] for e in failed)}" if failed else ""))
    head = ["", "result", "versions / suite", "calico", "tests", *stage_names, "total", "first failure"]
    rows, classes = [], []
    for e in sorted(entries, key=lambda e: (e.get("verdict") == "passed", str(e.get("name")))):
        stages = e.get("stages") or {}
        rows.append((f'<a href="{_e(e["link"])}">{_e(e["name"])}</a>', pill(e.get("verdict", "failed")),
                     _e(e.get("label", "")), _e(e.get("calico", "")), _e(e.get("tests", "")),
                     *(seconds(stages[s]) if s in stages else "-" for s in stage_names),
                     seconds(e.get("seconds")), f'<span class="long">{_e(_cut(e.get("error", ""), 240))}</span>'))
        classes.append("" if e.get("verdict") == "passed" else "bad")
    numeric = tuple(range(5, 5 + len(stage_names) + 1))
    body = (f'<h1>{_e(title)}</h1><section id="verdict" class="verdict {STATUS_CLASS[verdict]}" '
            f'data-verdict="{verdict}"><span class="word">{HEADLINE[verdict]}</span><span class="why">{_e(why)}'
            f'</span><div class="facts"><span>{_e(summary)}</span></div></section>'
            f'<section id="runs"><h2>Runs</h2>{_table(head, rows, numeric=numeric, row_classes=classes)}</section>')
    return _page(title, body)


# -- history ----------------------------------------------------------------------------------
def history_page(lanes: list[dict[str, Any]], source: Path, last: int) -> str:
    """lanes: calicolab/report/history.py's summary."""
    out = [f'<h1>calicolab history: {_e(source)}, last {last} runs per lane</h1>']
    flagged = sum(len(lane["flags"]) for lane in lanes)
    cls = "bad" if flagged else "ok"
    word = f"{flagged} FLAGGED" if flagged else "WITHIN P95"
    out.append(f'<section id="verdict" class="verdict {cls}" data-verdict="{"flagged" if flagged else "ok"}">'
               f'<span class="word">{word}</span><span class="why">{len(lanes)} lane(s)</span></section>')
    for lane in lanes:
        rows = [(_e(f["name"]), str(f["runs"]), seconds(f["p50"]), seconds(f["p95"]), seconds(f["last"]),
                 f'<span class="flag">{_e(f["flag"])}</span>' if f["flag"] else "") for f in lane["figures"]]
        flags = "".join(f'<div class="flag">{_e(x)}</div>' for x in lane["flags"])
        out.append(f'<section class="lane"><h2>{_e(lane["lane"])}</h2>'
                   f'<div>pass rate {lane["passed"]}/{lane["runs"]} ({lane["pass_rate"]:.0%})</div>{flags}'
                   f'{_table(("figure", "runs", "P50", "P95", "last", "flag"), rows, numeric=(1, 2, 3, 4))}</section>')
    return _page("calicolab history", "".join(out))
