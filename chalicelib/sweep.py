"""Scheduled sweeps: catch what the events missed, in every configured account and region.

`start_sweep` (the scheduled `sweep` handler) plans one task per account-region and sends each as a
message on the sweep queue; `run_task` (the `sweep_worker` handler, one message per invocation)
evaluates every supported resource of its account-region through the normal pipeline, so the modes,
exemptions, claims and alert deduplication are those of the events: a known, unchanged violation is
not alerted again within NETGUARD_DEDUP_HOURS.

Scale: the organization's size is bounded by neither one Lambda's 15 minutes nor its memory.
- Fan-out: one message per account-region, processed by as many workers as Lambda runs.
- A worker reads the region's network state in a few paginated calls (Lookups.prime), then the
  SageMaker resources in chunks (NETGUARD_SWEEP_CHUNK), then the network resources once, with what
  the chunks learned about their users. Only counters stay in memory; findings are streamed to a
  temporary file uploaded to S3 as the part's report.
- Close to its time limit a worker stops between chunks and sends a continuation message (same task,
  further offset); the account-region is counted done only when its last chunk is.
- The ledger counts finished account-regions (one transaction per part, so a redelivered message
  counts once); whoever finishes the last writes the sweep's summary report and sends the one digest.

The parts: sweep_tasks (the task message, the plan, the fan-out), sweep_run (a task's run: chunks,
part report, figures, continuation), sweep_digest (summary and digest); this module starts a sweep
and keeps every name importable from chalicelib.sweep.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .sweep_digest import MAX_ERRORS_KEPT, SUMMARY_SCHEMA, digest_alert, finish_sweep, summarize
from .sweep_run import (
    REPORT_SCHEMA,
    STOP_MARGIN_SECONDS,
    PartReport,
    Stats,
    evaluate_in_chunks,
    give_up_task,
    run_task,
)
from .sweep_tasks import (
    TASK_SCHEMA,
    SweepDeps,
    Task,
    accounts_to_sweep,
    check_task,
    new_sweep_id,
    plan,
    regions_to_sweep,
    send_tasks,
)

__all__ = [
    "MAX_ERRORS_KEPT", "REPORT_SCHEMA", "STOP_MARGIN_SECONDS", "SUMMARY_SCHEMA", "TASK_SCHEMA", "PartReport", "Stats",
    "SweepDeps", "Task", "accounts_to_sweep", "check_task", "digest_alert", "evaluate_in_chunks", "finish_sweep",
    "give_up_task", "new_sweep_id", "plan", "regions_to_sweep", "run_task", "send_tasks", "start_sweep", "summarize",
]

log = logging.getLogger("netguard.sweep")


def start_sweep(deps: SweepDeps, sweep_id: str | None = None, send: Callable[[list[Task]], None] | None = None
                ) -> dict[str, Any]:
    """Plan the sweep, record it, hand out its tasks (to `send`; without it, run them here in turn)."""
    sweep_id = sweep_id or new_sweep_id()
    tasks = plan(sweep_id, deps.settings, deps.clients)
    deps.ledger.start_sweep(sweep_id, [f"{t.account}/{t.region}" for t in tasks])
    if send is not None:
        send(tasks)
    else:
        for task in tasks:
            run_task(task, deps)
    log.info("sweep %s started: %d account-region task(s)", sweep_id, len(tasks))
    return {"sweep_id": sweep_id, "tasks": len(tasks), "accounts": sorted({t.account for t in tasks}),
            "regions": sorted({t.region for t in tasks})}
