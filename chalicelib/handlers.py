"""Lambda entry points: each turns a trigger's event into a Trigger and runs the pipeline once.

Cross-cutting work lives here so app.py stays wiring: the tolerant event envelope, structured
logging with the event id as correlation id, EMF metrics by control, event-level idempotency
(Powertools, in the ledger table), and the per-container runtime (settings, policy, clients) built
on the first invocation, not at import. A malformed or foreign event is logged with its id and
skipped: it never crashes the function and never leads to an action.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from chalice.app import CloudWatchEvent, EventSourceHandler

from .aws import AWS_ERRORS, Clients, error_code, is_retryable
from .collect import Collector
from .configrule import compliance_change_pattern, refs_from_compliance_change
from .errors import ConfigError, IgnoredEvent, InvalidEvent
from .ledger import BufferedIndex, DynamoLedger
from .model import SUCCEEDED, EventContext, ResourceRef, Trigger
from .notify import Notifier, resend_undelivered
from .pipeline import Pipeline, RunReport
from .policy import Policy, load_policy
from .recheck import RecheckQueue
from .recheck import decode as decode_recheck
from .scan import list_refs
from .settings import Settings
from .signing import signer_for
from .triggers import (
    api_call_pattern,
    from_api_call,
    from_state_change,
    state_change_pattern,
    watched_types,
)

SERVICE = "netguard-engine"  # distinct from the Chalice app name, or every log line prints twice
METRICS_NAMESPACE = "netguard"

logger = Logger(service=SERVICE)


def covered_types(policy: Policy) -> list[str]:
    """What the controls evaluate, and the shared resources whose changes re-evaluate it."""
    return watched_types({t for c in policy.controls if c.mode != "off" for t in c.resource_types})


def event_patterns(policy: Policy) -> dict[str, dict[str, Any]]:
    """The EventBridge pattern of each event handler, derived from the controls."""
    types = covered_types(policy)
    return {"on_api_call": api_call_pattern(types), "on_state_change": state_change_pattern(types),
            "on_compliance_change": compliance_change_pattern(policy)}


class TolerantEvent(CloudWatchEvent):
    """Chalice's CloudWatchEvent raises KeyError on a missing envelope field before our code runs.
    This one never raises; the pipeline validates the raw event itself (triggers.py)."""

    def _extract_attributes(self, event_dict: Any) -> None:
        raw = event_dict if isinstance(event_dict, Mapping) else {}
        self.version = raw.get("version")
        self.account = raw.get("account")
        self.region = raw.get("region")
        self.detail = raw.get("detail")
        self.detail_type = raw.get("detail-type")
        self.source = raw.get("source")
        self.time = raw.get("time")
        self.event_id = raw.get("id")
        self.resources = raw.get("resources")


def tolerant(handler: EventSourceHandler) -> EventSourceHandler:
    """Make a Chalice event handler survive any payload (see TolerantEvent)."""
    handler.event_class = TolerantEvent
    return handler


class EmfTelemetry:
    """Counts by (metric, control), flushed as CloudWatch EMF lines at the end of an invocation."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def count(self, metric: str, control: str, value: int = 1) -> None:
        self.counts[(metric, control)] += value

    def flush(self) -> None:
        for (metric, control), value in sorted(self.counts.items()):
            self.emit(metric, control, value)
        self.counts.clear()

    @staticmethod
    def emit(metric: str, control: str, value: int = 1) -> None:
        """One EMF line now (namespace netguard, dimension control, and Powertools' service)."""
        from aws_lambda_powertools.metrics import MetricUnit, single_metric  # noqa: PLC0415

        with single_metric(name=metric, unit=MetricUnit.Count, value=value, namespace=METRICS_NAMESPACE) as m:
            m.add_dimension(name="control", value=control)


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    clients: Clients
    ledger: DynamoLedger
    notifier: Notifier
    idempotent: Callable[[Callable[..., Any]], Callable[..., Any]]
    idempotency_config: Any

    def pipeline(self, telemetry: Any, collector: Any = None) -> Pipeline:
        return Pipeline(self.policy, self.settings, self.clients, self.ledger, self.notifier, telemetry,
                        collector=collector)

    def sweep_deps(self, telemetry: Any) -> Any:
        from .sweep import SweepDeps, send_tasks  # noqa: PLC0415 - sweeps only

        queue = self.settings.sweep_queue_url
        enqueue = (lambda task: send_tasks(self.clients, queue, [task])) if queue else None
        return SweepDeps(self.policy, self.settings, self.clients, self.ledger, self.notifier, telemetry, enqueue)


def make_clients(settings: Settings) -> Clients:
    """The container's AWS clients (tests replace this with clients on their mock account)."""
    return Clients.for_settings(settings)


@functools.lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Everything an invocation needs, built once per container on first use."""
    from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415 - first invocation only
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    # The stage modules log through standard loggers under "netguard": same JSON lines, same correlation id.
    logging.getLogger("netguard")
    copy_config_to_registered_loggers(source_logger=logger, include={"netguard"})
    settings = Settings.from_env()
    if not settings.ledger_table:
        raise ConfigError("NETGUARD_LEDGER_TABLE is not set: netguard will not act without its ledger")
    clients = make_clients(settings)
    ledger = DynamoLedger(settings.ledger_table, clients, dedup_hours=settings.dedup_hours,
                          retention_days=settings.ledger_retention_days, workers=settings.read_concurrency,
                          signer=signer_for(settings, clients))
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.ledger_table, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at",
        static_pk_value=f"idempotency#{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'netguard')}",
        boto3_client=clients.client("dynamodb"))
    config = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=settings.idempotency_hours * 3600)
    idempotent = functools.partial(idempotent_function, data_keyword_argument="event",
                                   persistence_store=persistence, config=config)
    notifier = Notifier(settings, clients, ledger=ledger)
    notifier.on_undelivered = lambda channel: EmfTelemetry.emit("undelivered", "alerts")  # alarmed by the stack
    return Runtime(settings, load_policy(settings.policy_dir), clients, ledger, notifier, idempotent, config)


def summary(report: RunReport) -> dict[str, Any]:
    """What an invocation returns (and Powertools idempotency stores): JSON, small."""
    return {
        "event_id": report.context.event_id,
        "resources": len({f.resource.ref for f in report.findings}),
        "findings": sum(1 for f in report.findings if f.status == "NON_COMPLIANT"),
        "decisions": [{"control": o.decision.finding.control.id, "resource": o.decision.finding.resource.ref.resource_id,
                       "decision": o.decision.kind, "result": o.result, "action_id": o.action_id}
                      for o in report.outcomes],
        "remediated": sum(1 for o in report.outcomes if o.result == SUCCEEDED),
        "missing": [r.resource_id for r in report.missing],
        "errors": [{"resource": r.resource_id, "error": e} for r, e in report.errors],
    }


def _parse(kind: str, raw: Any, policy: Policy) -> Trigger:
    if kind == "on_api_call":
        return from_api_call(raw, covered_types(policy))
    if kind == "on_compliance_change":
        event_id, rule_name, ref, identifier = refs_from_compliance_change(raw, policy)
        context = EventContext(event_id, "config-compliance-change", event_name=f"{rule_name} ({identifier})",
                               event_time=raw.get("time") if isinstance(raw.get("time"), str) else None)
        return Trigger(context, (ref,))
    return from_state_change(raw)


def _loggable(value: Any, limit: int = 256) -> str | None:
    """Text from an event, safe to log: a string cut to `limit`, with what UTF-8 cannot carry (a lone
    surrogate) escaped, so that the log line is written, not lost. None for anything but a string."""
    if not isinstance(value, str):
        return None
    return value[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def _check_accounts(trigger: Trigger, settings: Settings, clients: Clients | None = None) -> None:
    """Act only where configured: allowed accounts (NETGUARD_ACCOUNTS, the organization, or our own) and
    regions (NETGUARD_REGIONS, when set); and not on a change netguard made itself (exactly its own
    roles: Settings.own_principal; `clients` tells the home account when the settings do not)."""
    event_id = trigger.context.event_id
    foreign = sorted({r.account for r in trigger.refs if not settings.account_allowed(r.account)})
    if foreign:
        raise IgnoredEvent(f"account {', '.join(foreign)} is not one netguard is configured for", event_id)
    regions = sorted({r.region for r in trigger.refs if not settings.region_allowed(r.region)})
    if regions:
        raise IgnoredEvent(f"region {', '.join(regions)} is not one netguard is configured for", event_id)
    principal = trigger.context.principal
    if principal and ":assumed-role/" in principal and trigger.refs:
        home = settings.home_account or (clients.home_account if clients is not None else None)
        if settings.own_principal(principal, trigger.refs[0].account, home):
            raise IgnoredEvent(f"a change netguard made itself ({principal})", event_id)


def schedule_rechecks(rt: Runtime, report: RunReport, attempt: int = 1, include_duplicates: bool = False) -> int:
    """Send what the run deferred or could not do to the recheck queue; returns the messages sent."""
    try:
        return len(RecheckQueue(rt.settings, rt.clients).schedule_report(report, report.context.event_id, attempt,
                                                                         include_duplicates))
    except AWS_ERRORS as exc:
        # The decision is recorded and alerted already; the next event or sweep will look again.
        items = report.recheck_refs(include_duplicates) + report.limited_refs()
        logger.error("could not schedule re-checks", extra={"error": error_code(exc),
                                                            "resources": [r.key for r, _ in items]})
        return 0


def _handle(kind: str, event: CloudWatchEvent) -> dict[str, Any]:
    raw = event.to_dict()
    event_id = _loggable(raw.get("id")) if isinstance(raw, Mapping) else None
    logger.set_correlation_id(event_id)
    logger.append_keys(handler=kind)
    context = event.context
    rt = runtime()
    try:
        trigger = _parse(kind, raw, rt.policy)
        _check_accounts(trigger, rt.settings, rt.clients)
    except InvalidEvent as exc:
        logger.warning("malformed event skipped", extra={"event_id": _loggable(exc.event_id) or event_id,
                                                         "reason": _loggable(exc.reason)})
        return {"skipped": "invalid", "reason": exc.reason, "event_id": exc.event_id or event_id}
    except IgnoredEvent as exc:
        logger.info("event ignored", extra={"event_id": _loggable(exc.event_id), "reason": _loggable(exc.reason)})
        return {"skipped": "ignored", "reason": exc.reason, "event_id": exc.event_id}

    telemetry = EmfTelemetry()

    def process(event: dict[str, Any]) -> dict[str, Any]:
        report = rt.pipeline(telemetry).run(trigger)
        result = summary(report)
        result["rechecks"] = schedule_rechecks(rt, report)
        logger.info("event processed", extra={"summary": result})
        return result

    from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
        IdempotencyAlreadyInProgressError,
    )

    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        rt.idempotency_config.register_lambda_context(context)
    try:
        return rt.idempotent(process)(event=raw)
    except IdempotencyAlreadyInProgressError:
        # Another invocation holds this event. Fail this one so that Lambda retries it later: by then
        # the other has stored its result, or has died and its in-progress record has expired.
        logger.info("event already being processed by another invocation; failing for a retry",
                    extra={"event_id": event_id})
        raise
    finally:
        telemetry.flush()


def on_api_call(event: CloudWatchEvent) -> dict[str, Any]:
    return _handle("on_api_call", event)


def on_state_change(event: CloudWatchEvent) -> dict[str, Any]:
    return _handle("on_state_change", event)



def on_compliance_change(event: CloudWatchEvent) -> dict[str, Any]:
    return _handle("on_compliance_change", event)


# --------------------------------------------------------------------------- AWS Config custom rule


def config_rule(event: Any, context: Any) -> dict[str, Any]:
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
            from .sweep import evaluate_in_chunks  # noqa: PLC0415

            collector = Collector(rt.clients, {t for c in rt.policy.controls for t in c.resource_types},
                                  index=BufferedIndex(rt.ledger), workers=rt.settings.read_concurrency)
            list_errors: list[tuple[str, str]] = []  # logged by list_refs; those types get no evaluation now
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


# ------------------------------------------------------------------------------------ SQS handlers


def _batch(event: Any, record_handler: Callable[[Any], Any]) -> dict[str, Any]:
    """Run `record_handler` on each SQS record; the failed ones are reported (partial batch response)
    for SQS to deliver again, then to the dead-letter queue."""
    from aws_lambda_powertools.utilities.batch import (  # noqa: PLC0415
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    raw = event.to_dict() if hasattr(event, "to_dict") else event
    if not isinstance(raw, Mapping) or not isinstance(raw.get("Records"), list):
        logger.warning("not an SQS batch: skipped")
        return {"batchItemFailures": []}
    # A record without a message id cannot be reported as failed (SQS never sends one): log it, go on.
    records = [r for r in raw["Records"] if isinstance(r, Mapping) and isinstance(r.get("messageId"), str)
               and r["messageId"]]
    if len(records) != len(raw["Records"]):
        logger.warning("SQS records without a message id skipped",
                       extra={"skipped": len(raw["Records"]) - len(records)})
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event={**raw, "Records": records}, record_handler=record_handler,
                                    processor=processor, context=getattr(event, "context", None))


def recheck(event: Any) -> dict[str, Any]:
    """Deferred decisions and retryable failures, looked at again (recheck.py)."""
    logger.append_keys(handler="recheck")
    rt = runtime()

    def handle(record: Any) -> dict[str, Any]:
        logger.set_correlation_id(record.message_id)
        try:
            item = decode_recheck(record.body)
            trigger = Trigger(EventContext(f"recheck-{record.message_id}", "recheck",
                                           event_name=f"attempt {item.attempt} of {item.origin}"), item.refs)
            _check_accounts(trigger, rt.settings)
            waits = item.waits(dt.datetime.now(dt.timezone.utc))
            if waits > rt.settings.action_window_minutes * 60:  # no window of netguard's ends that late
                raise InvalidEvent(f"not_before {item.not_before} is further than a blast-radius window")
        except (InvalidEvent, IgnoredEvent) as exc:
            # Kept, not dropped: reported failed, it ends in the dead-letter queue for someone to look at.
            logger.warning("unusable recheck message", extra={"message_id": record.message_id, "reason": exc.reason})
            raise
        queue = RecheckQueue(rt.settings, rt.clients)
        if waits:  # a blast-radius window ends later than SQS can delay a message: on again, not run yet
            sent = queue.schedule([(ref, item.reason) for ref in item.refs], item.origin, item.attempt,
                                  not_before=item.not_before)
            logger.info("recheck not due yet", extra={"not_before": item.not_before, "resent": len(sent)})
            return {"attempt": item.attempt, "waiting": waits, "rechecks": len(sent)}
        telemetry = EmfTelemetry()
        try:
            report = rt.pipeline(telemetry).run(trigger)
        finally:
            telemetry.flush()
        failed_reads = [ref.key for ref, message in report.errors if is_retryable(message)]
        if failed_reads:
            # A throttled or failing read: let SQS deliver this message again (visibility timeout, DLQ).
            raise RecheckRetry(f"retryable errors reading {', '.join(failed_reads)}")
        sent = queue.schedule_report(report, item.origin or trigger.context.event_id, item.attempt + 1,
                                     include_duplicates=True)
        result = summary(report) | {"attempt": item.attempt, "rechecks": len(sent)}
        logger.info("recheck processed", extra={"summary": result})
        return result

    return _batch(event, handle)


class RecheckRetry(RuntimeError):
    """A recheck met a retryable error: SQS delivers the message again."""


def sweep(event: Any) -> dict[str, Any]:
    """Scheduled: plan the sweep and send one task per account-region (sweep.py)."""
    from .sweep import send_tasks, start_sweep  # noqa: PLC0415

    logger.append_keys(handler="sweep")
    rt = runtime()
    telemetry = EmfTelemetry()
    queue = rt.settings.sweep_queue_url
    try:
        # First what earlier alerts could not deliver (a Slack or SNS outage), then the sweep itself.
        try:
            remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
            resent = resend_undelivered(rt.ledger, rt.notifier,
                                        (lambda: remaining() / 1000.0) if callable(remaining) else None)
        except AWS_ERRORS as exc:
            logger.error("could not read the undelivered alerts", extra={"error": error_code(exc)})
            resent = {"resent": 0, "still_undelivered": -1}
        result = start_sweep(rt.sweep_deps(telemetry),
                             send=(lambda tasks: send_tasks(rt.clients, queue, tasks)) if queue else None)
        result["undelivered_alerts"] = resent
    finally:
        telemetry.flush()
    logger.info("sweep planned", extra={"summary": result})
    return result


def sweep_worker(event: Any) -> dict[str, Any]:
    """One account-region of a sweep per message (sweep.py)."""
    from .sweep import Task, check_task, give_up_task, run_task  # noqa: PLC0415

    logger.append_keys(handler="sweep_worker")
    rt = runtime()
    context = getattr(event, "context", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining() / 1000.0) if callable(remaining) else None

    def handle(record: Any) -> dict[str, Any]:
        logger.set_correlation_id(record.message_id)
        try:
            task = Task.decode(record.body)
            check_task(task, rt.settings, rt.ledger)
        except (InvalidEvent, IgnoredEvent) as exc:
            # Kept, not dropped: reported failed, it ends in the dead-letter queue for someone to look at.
            logger.warning("unusable sweep task", extra={"message_id": record.message_id, "reason": exc.reason})
            raise
        telemetry = EmfTelemetry()
        deps = rt.sweep_deps(telemetry)
        try:
            figures = run_task(task, deps, time_left)
        except Exception as exc:
            received = int(record.attributes.approximate_receive_count or 1)
            if received >= rt.settings.sweep_max_receives:
                logger.error("sweep task failed on its last delivery", extra={"task": task.key, "error": str(exc)})
                give_up_task(task, deps, f"{type(exc).__name__}: {exc}")
            raise  # delivered again, or (the last time) kept in the dead-letter queue
        finally:
            telemetry.flush()
        logger.info("sweep task done", extra={"summary": figures})
        return figures

    return _batch(event, handle)
