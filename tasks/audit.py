"""Audit: checks that can fail a run (from-scratch vs library twins; later fairness, explanations)."""

from __future__ import annotations

from typing import Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline.audit import AuditReport, raise_for_failures


@task(cache_policy=NO_CACHE, task_run_name="audit-{check.__name__}")
def audit(check: Callable[..., AuditReport], *args, **kwargs) -> AuditReport:
    """Run ``check(*args, **kwargs)``; raise AuditFailedError (failing the run) on any failed finding."""
    report = check(*args, **kwargs)
    logger = get_run_logger()
    for finding in report.findings:
        logger.info("%s %s: %s", "PASS" if finding.passed else "FAIL", finding.check, finding.detail)
    return raise_for_failures(report)
