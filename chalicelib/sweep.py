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
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from .aws import Clients
from .collect import Collector
from .errors import IgnoredEvent, InvalidEvent
from .ledger import BufferedIndex
from .model import (
    FAILED,
    NON_COMPLIANT,
    SUCCEEDED,
    EventContext,
    ResourceRef,
    Trigger,
)
from .notify import DELIVERED, DIGEST_SCHEMA
from .pipeline import Pipeline, RunReport
from .policy import Policy
from .recheck import RecheckQueue, message_body
from .scan import finding_row, list_refs
from .settings import Settings
from .triggers import ACCOUNT_RE, REGION_RE

log = logging.getLogger("netguard.sweep")

TASK_SCHEMA = "netguard.sweep-task/v1"
REPORT_SCHEMA = "netguard.sweep-report/v1"
SUMMARY_SCHEMA = "netguard.sweep-summary/v1"
STOP_MARGIN_SECONDS = 90  # a worker with less time left than this stops between chunks and continues
MAX_ERRORS_KEPT = 20


@dataclass(frozen=True)
class Task:
    sweep_id: str
    account: str
    region: str
    offset: int = 0  # resources already swept by earlier invocations of this task
    part: int = 0

    @property
    def key(self) -> str:
        return f"{self.account}#{self.region}#{self.part:04d}"

    def encode(self) -> str:
        return json.dumps({"schema": TASK_SCHEMA, "sweep_id": self.sweep_id, "account": self.account,
                           "region": self.region, "offset": self.offset, "part": self.part})

    @classmethod
    def decode(cls, body: Any) -> "Task":
        data = message_body(body, TASK_SCHEMA)
        sweep_id, account, region = data.get("sweep_id"), data.get("account"), data.get("region")
        offset, part = data.get("offset", 0), data.get("part", 0)
        if not isinstance(sweep_id, str) or not 0 < len(sweep_id) <= 64:
            raise InvalidEvent("invalid sweep_id")
        if not isinstance(account, str) or not ACCOUNT_RE.match(account):
            raise InvalidEvent("invalid account")
        if not isinstance(region, str) or not REGION_RE.match(region):
            raise InvalidEvent("invalid region")
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in (offset, part)):
            raise InvalidEvent("offset and part must be whole numbers")
        return cls(sweep_id, account, region, offset, part)


def check_task(task: Task, settings: Settings, ledger: Any) -> None:
    """A task is swept only where netguard is configured to act (NETGUARD_ACCOUNTS, NETGUARD_REGIONS)
    and only as part of a sweep netguard planned: its account-region is one of that sweep's recorded
    targets. Anyone who can send to the sweep queue could otherwise point netguard anywhere."""
    if not settings.account_allowed(task.account):
        raise IgnoredEvent(f"sweep task for account {task.account}, which netguard is not configured for")
    if not settings.region_allowed(task.region):
        raise IgnoredEvent(f"sweep task for region {task.region}, which netguard is not configured for")
    targets = ledger.sweep_targets(task.sweep_id)
    if targets is None:
        raise IgnoredEvent(f"sweep task of sweep {task.sweep_id}, which netguard did not start")
    if f"{task.account}/{task.region}" not in targets:
        raise IgnoredEvent(f"sweep task for {task.account}/{task.region}, not a target of sweep {task.sweep_id}")


def new_sweep_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def accounts_to_sweep(settings: Settings, clients: Clients) -> list[str]:
    """Every ACTIVE account of the organization; or our own and the configured ones."""
    if settings.organization:
        org = clients.client("organizations")
        return sorted(a["Id"] for page in org.get_paginator("list_accounts").paginate()
                      for a in page.get("Accounts", []) if a.get("Status") == "ACTIVE")
    return sorted({clients.home_account, *settings.accounts})


def regions_to_sweep(settings: Settings) -> list[str]:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    regions = list(settings.regions) or ([region] if region else [])
    if not regions:
        from .errors import ConfigError  # noqa: PLC0415

        raise ConfigError("no region to sweep: set NETGUARD_REGIONS")
    return regions


def plan(sweep_id: str, settings: Settings, clients: Clients) -> list[Task]:
    return [Task(sweep_id, account, region) for account in accounts_to_sweep(settings, clients)
            for region in regions_to_sweep(settings)]


# ------------------------------------------------------------------------------------- reporting


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
                "decisions": dict(self.decisions), "remediated": self.remediated, "failed": self.failed,
                "alerts": self.alerts, "rechecks": self.rechecks, "errors": self.errors,
                "error_count": self.error_count, "report_key": self.report_key, "seconds": round(self.seconds, 3)}

    def error(self, resource: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"resource": resource, "error": message[:500]})


# ------------------------------------------------------------------------------------------ worker


@dataclass
class SweepDeps:
    policy: Policy
    settings: Settings
    clients: Clients
    ledger: Any
    notifier: Any
    telemetry: Any = None
    enqueue: Callable[[Task], None] | None = None  # sends a continuation (None: run it in this process)


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
        refs = list_refs(collector, task.account, task.region, list_errors)
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
            report.add(finding_row(finding, outcomes.get(id(finding))))
    for outcome in run.outcomes:
        if outcome.result != "duplicate":
            stats.decisions[outcome.decision.kind] += 1
        stats.remediated += outcome.result == SUCCEEDED
        stats.failed += outcome.result == FAILED
    stats.alerts += sum(1 for d in run.deliveries if DELIVERED in d.values())
    for ref, message in run.errors:
        stats.error(ref.key, message)


# ------------------------------------------------------------------------------------ start, finish


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


def send_tasks(clients: Clients, queue_url: str, tasks: list[Task]) -> None:
    """One message per task, ten per call; a task SQS did not take is an error (the sweep would never end)."""
    sqs = clients.client("sqs")
    for start in range(0, len(tasks), 10):
        batch = tasks[start:start + 10]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": t.encode()} for i, t in enumerate(batch)])
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} sweep task(s): {answer['Failed'][:3]}")


def summarize(sweep_id: str, parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    by_status: Counter = Counter()
    violations: Counter = Counter()
    decisions: Counter = Counter()
    targets = sorted({f"{p['account']}/{p['region']}" for p in parts})
    for p in parts:
        by_status.update(p.get("by_status", {}))
        violations.update(p.get("violations", {}))
        decisions.update(p.get("decisions", {}))
    return {
        "schema": SUMMARY_SCHEMA, "sweep_id": sweep_id, "targets": targets,
        "resources": sum(p.get("resources", 0) for p in parts), "by_status": dict(sorted(by_status.items())),
        "violations": dict(sorted(violations.items())), "decisions": dict(sorted(decisions.items())),
        "remediated": sum(p.get("remediated", 0) for p in parts), "failed": sum(p.get("failed", 0) for p in parts),
        "alerts": sum(p.get("alerts", 0) for p in parts), "rechecks": sum(p.get("rechecks", 0) for p in parts),
        "errors": [e | {"target": f"{p['account']}/{p['region']}"} for p in parts for e in p.get("errors", [])
                   ][:MAX_ERRORS_KEPT],
        "error_count": sum(p.get("error_count", 0) for p in parts),
        "reports": sorted(p["report_key"] for p in parts if p.get("report_key")),
    }


def finish_sweep(sweep_id: str, deps: SweepDeps) -> dict[str, Any] | None:
    """Write the summary report and send the digest, once per sweep."""
    if not deps.ledger.claim_digest(sweep_id):
        return None
    summary = summarize(sweep_id, deps.ledger.sweep_stats(sweep_id))
    settings = deps.settings
    if settings.report_bucket:
        key = f"{settings.report_prefix}/{sweep_id}/summary.json"
        deps.clients.client("s3").put_object(Bucket=settings.report_bucket, Key=key, ContentType="application/json",
                                             Body=json.dumps(summary, indent=2).encode(), ServerSideEncryption="AES256")
        summary["summary_key"] = key
    if deps.notifier is not None:
        summary["delivery"] = deps.notifier.send(digest_alert(summary, settings.report_bucket))
    log.info("sweep %s finished: %d resources, %d violations, %d remediated", sweep_id, summary["resources"],
             sum(summary["violations"].values()), summary["remediated"])
    return summary


def digest_alert(summary: Mapping[str, Any], bucket: str | None) -> dict[str, Any]:
    """The one alert a sweep sends about itself (the individual alerts went out as usual)."""
    report = f"s3://{bucket}/{summary['summary_key']}" if bucket and summary.get("summary_key") else None
    return {
        "schema": DIGEST_SCHEMA,
        "alert_id": f"sweep-{summary['sweep_id']}",
        "sweep_id": summary["sweep_id"],
        "targets": summary["targets"],
        "resources": summary["resources"],
        "violations": summary["violations"],
        "remediated": summary["remediated"],
        "failed": summary["failed"],
        "alerts": summary["alerts"],
        "error_count": summary["error_count"],
        "errors": summary["errors"][:5],
        "report": report,
        "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
