"""The end of a sweep: the summary of every part (written to S3) and the one digest alert, sent once
by whichever worker finishes the last account-region."""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from .notify import DIGEST_SCHEMA
from .sweep_tasks import SweepDeps

log = logging.getLogger("netguard.sweep")

SUMMARY_SCHEMA = "netguard.sweep-summary/v1"
MAX_ERRORS_KEPT = 20  # errors listed in a part's figures and in the summary (all are counted)


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
        "finished_jobs": sum(p.get("finished_jobs", 0) for p in parts),
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
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
