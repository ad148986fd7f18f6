"""Checks of a data-parallel run that can fail it: equal replicas, the world size asked for, a sane loss."""

from __future__ import annotations

import numpy as np

from pipeline.audit import AuditReport


def audit_distributed(run, processes: int) -> AuditReport:
    """``run`` a `pipeline.training.distributed.DistributedRun` asked for ``processes`` workers.

    Data parallelism is only correct if every rank applies the same averaged update: the ranks'
    final parameters must then be bit-identical (their sha256 equal), and the model the flow
    registers must be those parameters.
    """
    from pipeline.training.distributed import parameter_digest

    report = AuditReport(f"{run.engine} data-parallel training")
    digests = run.digests
    report.add("every rank ends with the same parameters", len(digests) == processes and len(set(digests)) == 1,
               f"{len(digests)} ranks, {len(set(digests))} distinct sha256 ({', '.join(d[:12] for d in digests)})")
    report.add("world size as asked", run.world_size == processes,
               f"{run.world_size} processes ran, {processes} asked")
    registered = parameter_digest(run.model.module_)["sha256"]
    report.add("the model to register is rank 0's", bool(digests) and registered == digests[0],
               f"sha256 {registered[:12]} vs rank 0 {digests[0][:12] if digests else '-'}")
    loss = np.asarray(run.history["loss"], dtype=float)
    fell = len(loss) < 2 or loss[-1] < loss[0]
    report.add("training loss finite and falling", bool(np.isfinite(loss).all() and fell),
               f"loss per epoch {', '.join(f'{v:.4f}' for v in loss)}")
    return report
