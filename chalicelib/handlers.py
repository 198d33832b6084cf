"""Lambda entry points: each turns a trigger's event into a Trigger and runs the pipeline once.

Cross-cutting work lives here so app.py stays wiring: the tolerant event envelope, structured
logging with the event id as correlation id, EMF metrics by control, event-level idempotency
(Powertools, in the ledger table), and the per-container runtime (settings, policy, clients) built
on the first invocation, not at import. A malformed or foreign event is logged with its id and
skipped: it never crashes the function and never leads to an action.
"""
from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from chalice.app import CloudWatchEvent, EventSourceHandler

from .aws import Clients
from .errors import ConfigError, IgnoredEvent, InvalidEvent
from .ledger import DynamoLedger
from .model import SUCCEEDED, Trigger
from .notify import Notifier
from .pipeline import Pipeline, RunReport
from .policy import Policy, load_policy
from .settings import Settings
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
    return {"on_api_call": api_call_pattern(types), "on_state_change": state_change_pattern(types)}


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
        from aws_lambda_powertools.metrics import MetricUnit, single_metric  # noqa: PLC0415

        for (metric, control), value in sorted(self.counts.items()):
            with single_metric(name=metric, unit=MetricUnit.Count, value=value, namespace=METRICS_NAMESPACE) as m:
                m.add_dimension(name="control", value=control)
        self.counts.clear()


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    clients: Clients
    ledger: DynamoLedger
    notifier: Notifier
    idempotent: Callable[[Callable[..., Any]], Callable[..., Any]]
    idempotency_config: Any


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
    clients = Clients()
    ledger = DynamoLedger(settings.ledger_table, clients, dedup_hours=settings.dedup_hours,
                          retention_days=settings.ledger_retention_days)
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.ledger_table, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at",
        static_pk_value=f"idempotency#{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'netguard')}",
        boto3_client=clients.client("dynamodb"))
    config = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=settings.idempotency_hours * 3600)
    idempotent = functools.partial(idempotent_function, data_keyword_argument="event",
                                   persistence_store=persistence, config=config)
    return Runtime(settings, load_policy(settings.policy_dir), clients, ledger,
                   Notifier(settings, clients, ledger=ledger), idempotent, config)


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
    return from_state_change(raw)


def _handle(kind: str, event: CloudWatchEvent) -> dict[str, Any]:
    raw = event.to_dict()
    event_id = raw.get("id") if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) else None
    logger.set_correlation_id(event_id)
    logger.append_keys(handler=kind)
    context = event.context
    rt = runtime()
    try:
        trigger = _parse(kind, raw, rt.policy)
    except InvalidEvent as exc:
        logger.warning("malformed event skipped", extra={"event_id": exc.event_id or event_id, "reason": exc.reason})
        return {"skipped": "invalid", "reason": exc.reason, "event_id": exc.event_id or event_id}
    except IgnoredEvent as exc:
        logger.info("event ignored", extra={"event_id": exc.event_id, "reason": exc.reason})
        return {"skipped": "ignored", "reason": exc.reason, "event_id": exc.event_id}

    telemetry = EmfTelemetry()

    def process(event: dict[str, Any]) -> dict[str, Any]:
        pipeline = Pipeline(rt.policy, rt.settings, rt.clients, rt.ledger, rt.notifier, telemetry)
        report = pipeline.run(trigger)
        result = summary(report)
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
