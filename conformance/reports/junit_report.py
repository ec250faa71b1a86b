"""JUnit XML, for CI systems: one testcase per case, FAIL as failure, ERROR as error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.outcomes import Outcome
from conformance.runner import RunReport


def build(report: RunReport) -> ET.ElementTree:
    counts = report.counts()
    suite = ET.Element("testsuite", {
        "name": f"chatproto-conformance {report.suite} suite",
        "tests": str(len(report.results)),
        "failures": str(counts[Outcome.FAIL] + counts[Outcome.FLAKY]),
        "errors": str(counts[Outcome.ERROR]),
        "skipped": str(counts[Outcome.SKIP]),
        "timestamp": report.started.isoformat(),
        "time": f"{(report.finished - report.started).total_seconds():.3f}",
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("kit_version", report.kit_version),
                        ("spec_version", str(report.spec_version)),
                        ("target", report.target)):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for result in report.results:
        case = ET.SubElement(suite, "testcase", {
            "classname": result.case.id.rsplit(".", 1)[0],
            "name": f"{result.case.id.rsplit('.', 1)[1]} [{' '.join(result.case.requirements)}]",
            "time": f"{result.duration_s:.3f}",
        })
        messages = "\n".join(f"{v.requirement}: {v.message}" for v in result.violations)
        body = "\n".join(filter(None, [messages, result.detail,
                                       "replay: " + report.replay(result.case.id)]))
        if result.outcome in (Outcome.FAIL, Outcome.FLAKY):
            first = result.violations[0] if result.violations else None
            element = ET.SubElement(case, "failure", {
                "type": result.outcome.value,
                "message": f"{first.requirement}: {first.message}" if first else result.detail})
            element.text = body
        elif result.outcome is Outcome.ERROR:
            element = ET.SubElement(case, "error", {"message": result.detail.splitlines()[0]
                                                    if result.detail else "kit error"})
            element.text = body
        elif result.outcome is Outcome.SKIP:
            ET.SubElement(case, "skipped", {"message": result.detail})
        elif result.outcome is Outcome.WARN:
            ET.SubElement(case, "system-out").text = "WARN (a SHOULD was broken)\n" + body
    return ET.ElementTree(suite)


def write(report: RunReport, path: Path) -> None:
    tree = build(report)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
