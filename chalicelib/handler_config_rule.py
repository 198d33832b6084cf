"""The AWS Config custom rule's handler: evaluate what Config names (one resource, or every resource
of the account-region on a schedule) through the pipeline and answer with PutEvaluations (configrule.py)."""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import IgnoredEvent, InvalidEvent
from .handler_support import EmfTelemetry, RuntimeSource, logger, schedule_rechecks
from .model import EventContext, ResourceRef, Trigger

if TYPE_CHECKING:
    from .pipeline import RunReport


def config_rule(event: Any, context: Any, runtime: RuntimeSource) -> dict[str, Any]:
    """The custom Config rule: evaluate what Config names, answer with PutEvaluations (configrule.py)."""
    from .configrule import (  # noqa: PLC0415
        CONFIG_TYPES,
        DELETED_STATUSES,
        OVERSIZED,
        SCHEDULED,
        config_resource_name,
        evaluation,
        fetch_item,
        not_applicable,
        parse_invocation,
        put_evaluations,
    )

    logger.append_keys(handler="config_rule")
    rt = runtime()
    try:
        inv = parse_invocation(event, os.environ.get("AWS_REGION"))
        if not rt.settings.account_allowed(inv.account):
            raise IgnoredEvent(f"account {inv.account} is not one netguard is configured for", inv.rule_name)
        if not rt.settings.region_allowed(inv.region):
            raise IgnoredEvent(f"region {inv.region} is not one netguard is configured for", inv.rule_name)
    except InvalidEvent as exc:
        logger.warning("malformed Config rule invocation skipped", extra={"rule": exc.event_id, "reason": exc.reason})
        return {"skipped": "invalid", "reason": exc.reason}
    except IgnoredEvent as exc:
        logger.info("Config rule invocation ignored", extra={"rule": exc.event_id, "reason": exc.reason})
        return {"skipped": "ignored", "reason": exc.reason}
    logger.set_correlation_id(inv.event_id)
    telemetry = EmfTelemetry()
    ctx = EventContext(inv.event_id, "config-rule", event_name=inv.rule_name,
                       event_time=inv.notification_time.isoformat())
    evaluations: list[dict[str, Any]] = []
    rechecks = 0
    try:
        if inv.message_type == SCHEDULED:
            from .collect import Collector  # noqa: PLC0415 - the engine: first invocation only (cold start)
            from .ledger import BufferedIndex  # noqa: PLC0415
            from .scan import list_refs  # noqa: PLC0415
            from .sweep import evaluate_in_chunks  # noqa: PLC0415

            collector = Collector(rt.clients, {t for c in rt.policy.controls for t in c.resource_types},
                                  index=BufferedIndex(rt.ledger), workers=rt.settings.read_concurrency)
            list_errors: list[tuple[str, str]] = []  # logged by list_refs; those types get no evaluation now
            # No `since`: AWS Config records no jobs, so their evaluations (running or finished) are not
            # the rule's; sweeps and scans evaluate the jobs that ran within NETGUARD_JOB_LOOKBACK_DAYS.
            refs = [r for r in list_refs(collector, inv.account, inv.region, list_errors)
                    if r.resource_type in CONFIG_TYPES]
            pipeline = rt.pipeline(telemetry, collector)
            for batch, report in evaluate_in_chunks(pipeline, ctx, refs, rt.settings.sweep_chunk):
                evaluations += _evaluations(report, set(batch), inv, evaluation, not_applicable)
                rechecks += schedule_rechecks(rt, report)
        else:
            item = fetch_item(rt.clients, inv) if inv.message_type == OVERSIZED else inv.item or {}
            rtype, config_id = str(item.get("resourceType")), str(item.get("resourceId"))
            status = item.get("configurationItemStatus")
            if rtype not in CONFIG_TYPES:
                evaluations.append(not_applicable(rtype, config_id, inv.ordering_time,
                                                  f"netguard does not evaluate {rtype}"))
            elif inv.event_left_scope or status in DELETED_STATUSES:
                evaluations.append(not_applicable(rtype, config_id, inv.ordering_time,
                                                  "deleted" if status in DELETED_STATUSES else "left the rule's scope"))
            else:
                ref = ResourceRef(rtype, config_resource_name(rtype, item), inv.account, inv.region)
                report = rt.pipeline(telemetry).run(Trigger(ctx, (ref,)))
                failed = [message for r, message in report.errors if r == ref]
                if failed:
                    # No evaluation rather than a wrong one: fail, so that Lambda retries the invocation.
                    raise ConfigRuleError(f"could not read {ref.key}: {failed[0]}")
                evaluations += _evaluations(report, {ref}, inv, evaluation, not_applicable, config_id)
                rechecks += schedule_rechecks(rt, report)
        rejected = put_evaluations(rt.clients, inv, evaluations)
    finally:
        telemetry.flush()
    counts = Counter(e["ComplianceType"] for e in evaluations)
    result = {"rule": inv.rule_name, "message_type": inv.message_type, "evaluations": len(evaluations),
              "by_compliance": dict(counts), "rejected": rejected, "rechecks": rechecks}
    logger.info("Config rule evaluated", extra={"summary": result})
    return result


class ConfigRuleError(RuntimeError):
    """A resource named by Config could not be read: the invocation fails and is retried."""


def _evaluations(report: RunReport, refs: set[ResourceRef], inv: Any, evaluation: Callable[..., Any],
                 not_applicable: Callable[..., Any], config_id: str | None = None) -> list[dict[str, Any]]:
    """The evaluations of `refs` (the resources Config asked about) from one pipeline run."""
    by_ref: dict[ResourceRef, list[Any]] = {}
    for finding in report.findings:
        if finding.resource.ref in refs:
            by_ref.setdefault(finding.resource.ref, []).append(finding)
    outcomes = {id(o.decision.finding): o for o in report.outcomes}
    out = [evaluation(ref, config_id or ref.resource_id, findings, outcomes, inv.ordering_time)
           for ref, findings in by_ref.items()]
    out += [not_applicable(ref.resource_type, config_id or ref.resource_id, inv.ordering_time,
                           "no longer exists") for ref in report.missing if ref in refs]
    return out
