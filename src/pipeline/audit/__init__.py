"""Audits: checks that can fail a run — from-scratch models against their library twins.

An audit is a list of findings, each a named check with a stated tolerance; one failed finding
fails the audit, and the audit task turns that into a failed run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Finding:
    check: str
    passed: bool
    detail: str


@dataclass
class AuditReport:
    subject: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, passed: bool, detail: str) -> None:
        self.findings.append(Finding(check, bool(passed), detail))

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.passed]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([f.__dict__ for f in self.findings], columns=["check", "passed", "detail"])

    def __add__(self, other: AuditReport) -> AuditReport:
        return AuditReport(f"{self.subject} + {other.subject}", self.findings + other.findings)


class AuditFailedError(RuntimeError):
    """An audit found a from-scratch result that disagrees with its library twin."""

    def __init__(self, report: AuditReport):
        self.report = report
        lines = [f"audit of {report.subject} failed:"]
        lines += [f"  - {f.check}: {f.detail}" for f in report.failures]
        super().__init__("\n".join(lines))


def raise_for_failures(report: AuditReport) -> AuditReport:
    if not report.passed:
        raise AuditFailedError(report)
    return report
