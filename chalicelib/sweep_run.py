"""A sweep task run: one account-region swept through the normal pipeline in chunks, its findings
streamed to a part report, its figures counted in the ledger, and a continuation sent when the
invocation runs short of time (see sweep.py for the whole design)."""
from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .aws import Clients
from .collect import Collector
from .ledger import BufferedIndex
from .model import (
    FAILED,
    NON_COMPLIANT,
    SUCCEEDED,
    EventContext,
    ResourceRef,
    Trigger,
    finished_job,
)
from .notify import DELIVERED
from .pipeline import Pipeline, RunReport
from .recheck import RecheckQueue
from .scan import finding_row, job_cutoff, list_refs
from .sweep_digest import MAX_ERRORS_KEPT, finish_sweep
from .sweep_tasks import SweepDeps, Task

log = logging.getLogger("netguard.sweep")

REPORT_SCHEMA = "netguard.sweep-report/v1"
STOP_MARGIN_SECONDS = 90  # a worker with less time left than this stops between chunks and continues


class PartReport:
    """A part's non-compliant findings, streamed to a temporary file (memory stays flat)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.file = tempfile.TemporaryFile(mode="w+b")
        self.rows = 0
        self._write(json.dumps({"schema": REPORT_SCHEMA, "sweep_id": task.sweep_id, "account": task.account,
                                    "region": task.region, "part": task.part})[:-1] + ', "findings": [')

    def _write(self, text: str) -> None:
        self.file.write(text.encode("utf-8"))

    def add(self, row: Mapping[str, Any]) -> None:
        self._write(("," if self.rows else "") + "\n" + json.dumps(row, default=str))
        self.rows += 1

    def finish(self, stats: Mapping[str, Any]) -> None:
        self._write('\n], "summary": ' + json.dumps(stats, default=str) + "}\n")
        self.file.flush()

    def upload(self, clients: Clients, bucket: str, key: str) -> None:
        """Streamed from the file, not read into memory."""
        self.file.seek(0)
        clients.client("s3").put_object(Bucket=bucket, Key=key, Body=self.file, ContentType="application/json",
                                        ServerSideEncryption="AES256")

    def close(self) -> None:
        self.file.close()


@dataclass
class Stats:
    """Counters of one worker invocation (what goes to the ledger, the summary and the digest)."""

    account: str
    region: str
    part: int
    resources: int = 0
    by_status: Counter = field(default_factory=Counter)
    violations: Counter = field(default_factory=Counter)  # control -> NON_COMPLIANT findings
    decisions: Counter = field(default_factory=Counter)  # decision kind -> count (new ones only)
    finished_jobs: int = 0  # NON_COMPLIANT findings on jobs that already finished (they ran so; see decide)
    remediated: int = 0
    failed: int = 0
    alerts: int = 0
    rechecks: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    error_count: int = 0
    report_key: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "region": self.region, "part": self.part, "resources": self.resources,
                "by_status": dict(self.by_status), "violations": dict(self.violations),
                "decisions": dict(self.decisions), "finished_jobs": self.finished_jobs,
                "remediated": self.remediated, "failed": self.failed,
                "alerts": self.alerts, "rechecks": self.rechecks, "errors": self.errors,
                "error_count": self.error_count, "report_key": self.report_key, "seconds": round(self.seconds, 3)}

    def error(self, resource: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"resource": resource, "error": message[:500]})


def run_task(task: Task, deps: SweepDeps, time_left: Callable[[], float] | None = None) -> dict[str, Any]:
    """Sweep one account-region (from `task.offset`); returns this invocation's figures."""
    started = time.monotonic()
    stats = Stats(task.account, task.region, task.part)
    settings = deps.settings
    index = BufferedIndex(deps.ledger) if deps.ledger is not None else None
    collector = Collector(deps.clients, {t for c in deps.policy.controls for t in c.resource_types}, index=index,
                          workers=settings.read_concurrency)
    context = EventContext(f"sweep-{task.sweep_id}-{task.account}-{task.region}", "sweep")
    pipeline = Pipeline(deps.policy, settings, deps.clients, deps.ledger, deps.notifier, deps.telemetry,
                        collector=collector)
    report = PartReport(task)
    rechecks = RecheckQueue(settings, deps.clients)
    final, continuation = True, None
    try:
        list_errors: list[tuple[str, str]] = []  # what could not be listed: reported, the rest is swept
        refs = list_refs(collector, task.account, task.region, list_errors, since=job_cutoff(settings))
        for what, message in list_errors:
            stats.error(f"{task.account}/{task.region} {what}", message)
        if task.offset == 0 and not list_errors:
            collector.reads_every_sagemaker_resource(task.account, task.region)
        position = task.offset
        should_stop = (lambda: time_left() < STOP_MARGIN_SECONDS) if time_left is not None else None
        for batch, run in evaluate_in_chunks(pipeline, context, refs[task.offset:], settings.sweep_chunk,
                                             should_stop):
            _count(stats, run, report)
            stats.rechecks += len(rechecks.schedule_report(run, context.event_id))
            position += len(batch)
        if position < len(refs):
            continuation = Task(task.sweep_id, task.account, task.region, position, task.part + 1)
            final = False
        stats.seconds = time.monotonic() - started
        report.finish(stats.as_dict())
        if settings.report_bucket:
            key = f"{settings.report_prefix}/{task.sweep_id}/{task.account}/{task.region}/part-{task.part:04d}.json"
            report.upload(deps.clients, settings.report_bucket, key)
            stats.report_key = key
    finally:
        report.close()
    if continuation is not None:
        log.info("sweep %s %s/%s: stopping at %d of %d resources, continuing in a new invocation",
                 task.sweep_id, task.account, task.region, continuation.offset, len(refs))
        (deps.enqueue or (lambda t: run_task(t, deps, time_left)))(continuation)
    figures = stats.as_dict()
    counted = deps.ledger.record_sweep_stats(task.sweep_id, task.key, figures, final)
    if counted is not None and final and counted[0] >= counted[1]:
        finish_sweep(task.sweep_id, deps)
    return figures


def give_up_task(task: Task, deps: SweepDeps, error: str) -> dict[str, Any]:
    """The last delivery of a task failed too: count its account-region done, with the error, so that
    the sweep still ends with its summary and digest (which report it). The message itself goes on to
    the dead-letter queue."""
    stats = Stats(task.account, task.region, task.part)
    stats.error(f"{task.account}/{task.region}", f"sweep task failed on its last delivery: {error}")
    figures = stats.as_dict()
    counted = deps.ledger.record_sweep_stats(task.sweep_id, task.key, figures, True)
    if counted is not None and counted[0] >= counted[1]:
        finish_sweep(task.sweep_id, deps)
    return figures


def evaluate_in_chunks(pipeline: Pipeline, context: EventContext, refs: list[ResourceRef], size: int,
                       should_stop: Callable[[], bool] | None = None) -> Iterator[tuple[list[ResourceRef], RunReport]]:
    """Run the pipeline over `refs` (SageMaker resources before network ones, as list_refs gives them)
    `size` at a time, yielding each chunk with its report; stops early when `should_stop()` says so
    (checked between chunks, after the first, so that every invocation makes progress).
    Every chunk runs with follow=False: the SageMaker chunks only note what kind of user their network
    resources have, so each network resource is evaluated once, after them, with every hint known;
    and a network resource does not bring in its users again. A buffered dependency index is written
    after each chunk."""
    for start in range(0, len(refs), size):
        if start and should_stop is not None and should_stop():  # one chunk at least: always progress
            return
        batch = refs[start:start + size]
        run = pipeline.run(Trigger(context, tuple(batch)), follow=False)
        index = pipeline.collector.index if pipeline.collector is not None else None
        if isinstance(index, BufferedIndex):
            index.flush()
        yield batch, run


def _count(stats: Stats, run: Any, report: PartReport) -> None:
    stats.resources += len({f.resource.ref for f in run.findings} | set(run.missing))
    outcomes = {id(o.decision.finding): o for o in run.outcomes}
    for finding in run.findings:
        stats.by_status[finding.status] += 1
        if finding.status == NON_COMPLIANT:
            stats.violations[finding.control.id] += 1
            stats.finished_jobs += finished_job(finding.resource) is not None
            report.add(finding_row(finding, outcomes.get(id(finding))))
    for outcome in run.outcomes:
        if outcome.result != "duplicate":
            stats.decisions[outcome.decision.kind] += 1
        stats.remediated += outcome.result == SUCCEEDED
        stats.failed += outcome.result == FAILED
    stats.alerts += sum(1 for d in run.deliveries if DELIVERED in d.values())
    for ref, message in run.errors:
        stats.error(ref.key, message)
