"""A self-contained HTML report: one file, no scripts or styles fetched from anywhere.

It is organised per requirement, as an implementer reads the spec: each
requirement with its level, text, outcome and the cases that check it. Every
case that did not pass shows what it expected, the frames each connection sent
and received (time, hex and decoded), and the command that replays it.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from chatproto_spec.requirements import load_requirements
from conformance.outcomes import SEVERITY, Outcome
from conformance.runner import CaseResult, RunReport

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;
color:#1b1f24;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}
.o{font-weight:600;border-radius:.3rem;padding:0 .4rem;font-size:.85rem;white-space:nowrap}
.PASS{background:#d3f3d9;color:#114b1e}.FAIL{background:#ffd6d6;color:#7a0c0c}
.WARN{background:#fff0c2;color:#6a4b00}.SKIP{background:#eceff3;color:#46505c}
.ERROR{background:#f3d6ff;color:#4b0f6a}.FLAKY{background:#ffe3c9;color:#7a3a00}
code,pre{font:13px/1.35 ui-monospace,monospace}pre{white-space:pre-wrap;margin:0}
details{margin:.4rem 0 1rem}summary{cursor:pointer}
.frames td{font:12px/1.3 ui-monospace,monospace}.sent{color:#0b4fa0}.received{color:#1f6b2a}
.note{color:#6b6b6b}.muted{color:#6b6b6b}
"""


_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_MARKDOWN_CODE = re.compile(r"`([^`]+)`")


def _spec_text(text: str) -> str:
    """A requirement's Markdown as HTML text: links become their words, code stays code."""
    plain = escape(_MARKDOWN_LINK.sub(r"\1", text))
    return _MARKDOWN_CODE.sub(r"<code>\1</code>", plain)


def _badge(outcome: Outcome) -> str:
    return f'<span class="o {outcome.value}">{outcome.value}</span>'


def _case_details(report: RunReport, result: CaseResult) -> str:
    parts = [f'<details id="{escape(result.case.id)}"'
             f'{" open" if result.outcome is Outcome.FAIL else ""}>',
             f"<summary>{_badge(result.outcome)} <code>{escape(result.case.id)}</code> "
             f"{escape(result.case.title)}</summary>"]
    for violation in result.violations:
        parts.append(f"<p><b>{escape(violation.requirement)}</b>: "
                     f"{escape(violation.message)}</p>")
    if result.detail:
        parts.append(f"<pre>{escape(result.detail)}</pre>")
    parts.append(f"<p>Replay: <code>{escape(report.replay(result.case.id))}</code></p>")
    if result.outcome not in (Outcome.PASS, Outcome.SKIP) and result.transcript.entries:
        parts.append('<table class="frames"><tr><th>time</th><th>connection</th><th></th>'
                     "<th>decoded</th><th>hex</th></tr>")
        for entry in result.transcript.entries:
            arrow = {"sent": "kit &rarr;", "received": "&larr; peer", "note": ""}[entry.direction]
            parts.append(
                f'<tr class="{entry.direction}"><td>{entry.time_s * 1000:.1f} ms</td>'
                f"<td>{escape(entry.connection)}</td><td>{arrow}</td>"
                f"<td>{escape(entry.decoded)}</td><td>{escape(entry.hex())}</td></tr>")
        parts.append("</table>")
        if result.transcript.dropped:
            parts.append(f'<p class="muted">{result.transcript.dropped} further frames '
                         "not shown.</p>")
    parts.append("</details>")
    return "\n".join(parts)


def render(report: RunReport) -> str:
    requirements = load_requirements()
    counts = report.counts()
    tally = " ".join(f"{_badge(o)} {counts[o]}" for o in Outcome if counts[o])
    deselected = (f"; {len(report.deselected)} slow case(s) deselected by --skip-slow"
                  if report.deselected else "")
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>chatproto conformance: {escape(report.target)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>chatproto conformance report: {escape(report.suite)} suite</h1>",
        "<table>",
        f"<tr><th>target</th><td><code>{escape(report.target)}</code></td></tr>",
        f"<tr><th>kit</th><td>chatproto-conformance {escape(report.kit_version)}</td></tr>",
        f"<tr><th>spec</th><td>chatproto v{report.spec_version}</td></tr>",
        f"<tr><th>run</th><td>{report.started:%Y-%m-%d %H:%M:%S} UTC, "
        f"{(report.finished - report.started).total_seconds():.1f} s</td></tr>",
        f"<tr><th>cases</th><td>{len(report.results)}: {tally}{deselected}</td></tr>",
        f"<tr><th>exit status</th><td>{report.exit_status()}</td></tr>",
        "</table>",
        "<h2>Requirements</h2><table><tr><th>requirement</th><th>level</th>"
        "<th>outcome</th><th>text</th><th>cases</th></tr>",
    ]
    table = report.by_requirement()
    # Broken requirements first, each group in the spec's order.
    order = sorted(table, key=lambda r: -SEVERITY[table[r][0]])
    for req_id in order:
        outcome, results = table[req_id]
        req = requirements[req_id]
        links = " ".join(f'<a href="#{escape(r.case.id)}">{escape(r.case.id.split(".")[-1])}</a>'
                         for r in results)
        out.append(f"<tr><td><code>{req_id}</code></td><td>{req.level.value}</td>"
                   f"<td>{_badge(outcome)}</td><td>{_spec_text(req.text)}</td>"
                   f"<td>{links}</td></tr>")
    out.append("</table><h2>Cases</h2>")
    ordered = sorted(report.results, key=lambda r: (r.outcome in (Outcome.PASS, Outcome.SKIP),
                                                    r.case.id))
    out.extend(_case_details(report, r) for r in ordered)
    out.append("</body></html>")
    return "\n".join(out)


def write(report: RunReport, path: Path) -> None:
    path.write_text(render(report), encoding="utf-8")
