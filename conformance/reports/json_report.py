"""The machine-readable report: every case, every requirement, every frame of failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.outcomes import Outcome
from conformance.runner import CaseResult, RunReport

FORMAT_VERSION = 1


def _case(report: RunReport, result: CaseResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": result.case.id,
        "title": result.case.title,
        "requirements": list(result.case.requirements),
        "outcome": result.outcome.value,
        "duration_s": round(result.duration_s, 4),
        "violations": [{"requirement": v.requirement, "message": v.message}
                       for v in result.violations],
        "detail": result.detail,
        "runs": [o.value for o in result.runs],
        "replay": report.replay(result.case.id),
    }
    if result.outcome not in (Outcome.PASS, Outcome.SKIP):
        data["transcript"] = [
            {"time_s": round(e.time_s, 6), "connection": e.connection,
             "direction": e.direction, "hex": e.data.hex(), "decoded": e.decoded}
            for e in result.transcript.entries]
    return data


def as_dict(report: RunReport) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "kit_version": report.kit_version,
        "spec_version": report.spec_version,
        "suite": report.suite,
        "target": report.target,
        "started": report.started.isoformat(),
        "finished": report.finished.isoformat(),
        "exit_status": report.exit_status(),
        "counts": {o.value: n for o, n in report.counts().items()},
        "deselected": list(report.deselected),
        "blocked": dict(report.blocked),
        "requirements": {req: {"outcome": outcome.value,
                               "cases": [r.case.id for r in results]}
                         for req, (outcome, results) in report.by_requirement().items()},
        "cases": [_case(report, r) for r in report.results],
    }


def write(report: RunReport, path: Path) -> None:
    path.write_text(json.dumps(as_dict(report), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
