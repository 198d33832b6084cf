"""Scan a whole region: every notebook and security group, through the same pipeline as the events.

Shared network state is read up front in a few paginated calls (Lookups.prime), so the per-resource
cost is the resource's own describe calls only. Read-only unless `enforce`.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .aws import Clients
from .collect import Collector
from .ledger import DynamoLedger, MemoryLedger
from .model import (
    DOMAIN,
    ENDPOINT,
    ENDPOINT_CONFIG,
    MODEL,
    NOTEBOOK,
    PROCESSING_JOB,
    TRAINING_JOB,
    TRANSFORM_JOB,
    TUNING_JOB,
    EventContext,
    Finding,
    Outcome,
    ResourceRef,
    Trigger,
)
from .notify import Notifier
from .pipeline import Pipeline, RunReport
from .policy import load_policy
from .settings import Settings

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


def list_refs(collector: Collector, account: str, region: str) -> list[ResourceRef]:
    """Every resource to evaluate in the region: notebooks, running jobs, models, endpoint configurations,
    endpoints, Studio domains, VPCs, subnets, security groups."""
    lookups = collector.lookups(account, region)
    network = lookups.prime()
    sm = lookups.sagemaker
    refs = [ResourceRef(NOTEBOOK, nb["NotebookInstanceName"], account, region)
            for page in sm.get_paginator("list_notebook_instances").paginate()
            for nb in page.get("NotebookInstances", [])]
    # Jobs whose network settings matter now: the running ones (a finished job cannot be stopped).
    running = {"StatusEquals": "InProgress"}
    refs += [ResourceRef(TRAINING_JOB, j["TrainingJobName"], account, region)
             for page in sm.get_paginator("list_training_jobs").paginate(**running)
             for j in page.get("TrainingJobSummaries", [])]
    refs += [ResourceRef(PROCESSING_JOB, j["ProcessingJobName"], account, region)
             for page in sm.get_paginator("list_processing_jobs").paginate(**running)
             for j in page.get("ProcessingJobSummaries", [])]
    refs += [ResourceRef(TUNING_JOB, j["HyperParameterTuningJobName"], account, region)
             for page in sm.get_paginator("list_hyper_parameter_tuning_jobs").paginate(**running)
             for j in page.get("HyperParameterTuningJobSummaries", [])]
    refs += [ResourceRef(TRANSFORM_JOB, j["TransformJobName"], account, region)
             for page in sm.get_paginator("list_transform_jobs").paginate(**running)
             for j in page.get("TransformJobSummaries", [])]
    refs += [ResourceRef(MODEL, m["ModelName"], account, region)
             for page in sm.get_paginator("list_models").paginate() for m in page.get("Models", [])]
    refs += [ResourceRef(ENDPOINT_CONFIG, c["EndpointConfigName"], account, region)
             for page in sm.get_paginator("list_endpoint_configs").paginate() for c in page.get("EndpointConfigs", [])]
    refs += [ResourceRef(ENDPOINT, e["EndpointName"], account, region)
             for page in sm.get_paginator("list_endpoints").paginate() for e in page.get("Endpoints", [])]
    refs += [ResourceRef(DOMAIN, d["DomainId"], account, region)
             for page in sm.get_paginator("list_domains").paginate() for d in page.get("Domains", [])]
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
    refs = list_refs(collector, account, region)
    ledger: Any = None
    notifier = None
    if enforce:
        ledger = (DynamoLedger(settings.ledger_table, clients, dedup_hours=settings.dedup_hours,
                               retention_days=settings.ledger_retention_days)
                  if settings.ledger_table else MemoryLedger(ledger_file))
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
    errors = [{"resource": ref.resource_id, "error": message} for ref, message in report.errors]
    return ScanResult(account, report, rows, errors)
