"""Scan a whole region: every supported resource (and the jobs that ran within NETGUARD_JOB_LOOKBACK_DAYS),
through the same pipeline as the events.

Shared network state is read up front in a few paginated calls (Lookups.prime), so the per-resource
cost is the resource's own describe calls only. Read-only unless `enforce`.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .aws import AWS_ERRORS, Clients, concurrently, error_code, error_message
from .collect import Collector
from .ledger import DynamoLedger, MemoryLedger
from .model import EventContext, Finding, Outcome, ResourceRef, Trigger
from .notify import Notifier
from .pipeline import Pipeline, RunReport
from .policy import load_policy
from .resources import BY_TYPE, REGISTRY
from .settings import Settings
from .signing import signer_for

log = logging.getLogger("netguard.scan")


@dataclass
class ScanResult:
    account: str
    report: RunReport
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


def finding_row(finding: Finding, outcome: Outcome | None) -> dict[str, Any]:
    ref = finding.resource.ref
    decision = None
    if outcome is not None:
        decision = {"kind": outcome.decision.kind, "reason": outcome.decision.reason,
                    "action": outcome.decision.action, "result": outcome.result, "detail": outcome.detail,
                    "action_id": outcome.action_id}
    return {
        "control": finding.control.id,
        "title": finding.control.title,
        "severity": finding.control.severity,
        "resource_type": ref.resource_type,
        "resource_id": ref.resource_id,
        "arn": finding.resource.arn,
        "account": ref.account,
        "region": ref.region,
        "status": finding.status,
        "evidence": json.loads(json.dumps(finding.evidence, default=str)),
        "decision": decision,
    }


# What a scan or sweep lists by type (result key, id field, filter): each type's `listing`.
LISTS = {t.type: (t.listing.key, t.listing.id_field, dict(t.listing.params)) for t in REGISTRY if t.listing}


def job_cutoff(settings: Settings, now: dt.datetime | None = None) -> dt.datetime:
    """Jobs created after this are evaluated by scans and sweeps even when finished (NETGUARD_JOB_LOOKBACK_DAYS)."""
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=settings.job_lookback_days)


def list_refs(collector: Collector, account: str, region: str,
              errors: list[tuple[str, str]] | None = None, since: dt.datetime | None = None) -> list[ResourceRef]:
    """Every resource to evaluate in the region: notebooks, running jobs, models, endpoint configurations,
    endpoints, Studio domains, VPCs, subnets, security groups, VPC endpoints, EFS mount targets; of those, the
    types the controls cover (a type no control covers is not listed: no call, no permission needed); with
    `since`, also the jobs created after it that have finished (listed with CreationTimeAfter: the lists do
    not grow with all history). A list that fails is recorded in `errors` ((what, "Code: message")) and the
    others go on; without `errors` it raises."""
    lookups = collector.lookups(account, region)

    def guarded(what: str, read: Callable[[], Any], empty: Any) -> Any:
        try:
            return read()
        except AWS_ERRORS as exc:
            if errors is None:
                raise
            errors.append((what, f"{error_code(exc)}: {error_message(exc)}"))
            log.error("could not list %s in %s/%s: %s", what, account, region, errors[-1][1])
            return empty

    def listed(rtype: str) -> list[ResourceRef]:
        listing = BY_TYPE[rtype].listing
        assert listing is not None
        client = lookups.clients.client(BY_TYPE[rtype].service, region, account)
        ids = listing.ids_since(client, since) if since is not None else listing.ids(client)
        return [ResourceRef(rtype, resource_id, account, region) for resource_id in ids]

    # The lists are independent: made concurrently (each is a few round trips), kept in order.
    network, *sagemaker = concurrently(
        lambda rtype: guarded(rtype, lambda: listed(rtype), []) if rtype else guarded(
            "the network (subnets, route tables, VPCs, security groups)", lookups.prime, {}),
        [None, *(rtype for rtype in LISTS if rtype in collector.types)], collector.workers, "netguard-list")
    refs = [ref for found in sagemaker for ref in found]
    sagemaker_count = len(refs)
    refs += [ResourceRef(rtype, rid, account, region) for rtype, ids in network.items() for rid in ids]
    log.info("scanning %d SageMaker resources and %s in %s/%s", sagemaker_count,
             ", ".join(f"{len(ids)} {rtype.rsplit('::', 1)[-1]}" for rtype, ids in network.items()), account, region)
    return refs


def run_scan(clients: Clients, region: str, enforce: bool = False, ledger_file: str | None = None,
             policy_dir: str | None = None, progress: Callable[[int], Any] | None = None,
             settings: Settings | None = None) -> ScanResult:
    settings = settings or Settings.from_env()
    policy = load_policy(policy_dir or settings.policy_dir)
    account = clients.client("sts", region).get_caller_identity()["Account"]
    collector = Collector(clients, {t for c in policy.controls for t in c.resource_types},
                          workers=settings.read_concurrency)
    list_errors: list[tuple[str, str]] = []
    refs = list_refs(collector, account, region, list_errors, since=job_cutoff(settings))
    if not list_errors:
        collector.reads_every_sagemaker_resource(account, region)
    ledger: Any = None
    notifier = None
    if enforce:
        ledger = (DynamoLedger(settings.ledger_table, clients, dedup_hours=settings.dedup_hours,
                               retention_days=settings.ledger_retention_days, workers=settings.read_concurrency,
                               signer=signer_for(settings, clients), finished_days=settings.job_lookback_days)
                  if settings.ledger_table else MemoryLedger(ledger_file, settings.dedup_hours,
                                                             settings.job_lookback_days))
        notifier = Notifier(settings, clients, ledger=ledger)
    meter = progress(len(refs)) if progress else None
    collector.on_progress = meter.update if meter else None
    collector.index = ledger  # with --enforce, the scan also records what uses what, for later events
    context = EventContext(f"scan-{uuid.uuid4()}", "scan")
    pipeline = Pipeline(policy, settings, clients, ledger, notifier, report_only=not enforce, collector=collector)
    report = pipeline.run(Trigger(context, tuple(refs)))
    if meter:
        meter.close()
    rows = [finding_row(f, report.outcome_for(f)) for f in report.findings]
    errors = [{"resource": what, "error": message} for what, message in list_errors]
    errors += [{"resource": ref.resource_id, "error": message} for ref, message in report.errors]
    return ScanResult(account, report, rows, errors)
