"""Audit: checks that can fail a run (from-scratch vs library twins; later fairness, explanations)."""

from __future__ import annotations

from collections.abc import Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.audit import AuditReport, raise_for_failures
from tasks import run_logger


@task(cache_policy=NO_CACHE, task_run_name="audit-{check.__name__}")
def audit(check: Callable[..., AuditReport], *args, **kwargs) -> AuditReport:
    """Run ``check(*args, **kwargs)``; raise AuditFailedError (failing the run) on any failed finding."""
    report = check(*args, **kwargs)
    logger = run_logger()
    for finding in report.findings:
        logger.info("%s %s: %s", "PASS" if finding.passed else "FAIL", finding.check, finding.detail)
    return raise_for_failures(report)
