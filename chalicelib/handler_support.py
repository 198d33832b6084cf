"""What every Lambda handler shares: the tolerant event envelope, structured logging, EMF metrics,
the per-container runtime's shape, the account and region guard, the summary an invocation returns,
scheduling rechecks, and the SQS partial-batch adapter. handlers.py builds the runtime and wires the
handlers of handler_events, handler_config_rule, handler_recheck and handler_sweep to it."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from chalice.app import CloudWatchEvent, EventSourceHandler

from .aws import AWS_ERRORS, Clients, error_code
from .errors import IgnoredEvent
from .model import SUCCEEDED, Trigger
from .policy import Policy
from .settings import Settings

if TYPE_CHECKING:  # the engine is imported by the first invocation, not by `import app` (cold start)
    from .ledger import DynamoLedger
    from .notify import Notifier
    from .pipeline import Pipeline, RunReport

SERVICE = "netguard-engine"  # distinct from the Chalice app name, or every log line prints twice
METRICS_NAMESPACE = "netguard"

logger = Logger(service=SERVICE)


class TolerantEvent(CloudWatchEvent):
    """Chalice's CloudWatchEvent raises KeyError on a missing envelope field before our code runs.
    This one never raises; the pipeline validates the raw event itself (triggers.py)."""

    def _extract_attributes(self, event_dict: Any) -> None:
        # Any, not Mapping: each attribute keeps what the event holds, None when it is missing (Chalice types them str).
        raw: Any = event_dict if isinstance(event_dict, Mapping) else {}
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
        from .pipeline import Pipeline  # noqa: PLC0415 - first invocation only

        return Pipeline(self.policy, self.settings, self.clients, self.ledger, self.notifier, telemetry,
                        collector=collector)

    def sweep_deps(self, telemetry: Any) -> Any:
        from .sweep import SweepDeps, send_tasks  # noqa: PLC0415 - sweeps only

        queue = self.settings.sweep_queue_url
        enqueue = (lambda task: send_tasks(self.clients, queue, [task])) if queue else None
        return SweepDeps(self.policy, self.settings, self.clients, self.ledger, self.notifier, telemetry, enqueue)


RuntimeSource = Callable[[], Runtime]  # handlers.runtime: each handler asks for it where the old one did


def summary(report: RunReport) -> dict[str, Any]:
    """What an invocation returns (and Powertools idempotency stores): JSON, small."""
    return {
        "event_id": report.context.event_id,
        "resources": len({f.resource.ref for f in report.findings}),
        "findings": sum(1 for f in report.findings if f.status == "NON_COMPLIANT"),
        "decisions": [{"control": o.decision.finding.control.id,
                       "resource": o.decision.finding.resource.ref.resource_id,
                       "decision": o.decision.kind, "result": o.result, "action_id": o.action_id}
                      for o in report.outcomes],
        "remediated": sum(1 for o in report.outcomes if o.result == SUCCEEDED),
        "missing": [r.resource_id for r in report.missing],
        "errors": [{"resource": r.resource_id, "error": e} for r, e in report.errors],
    }


def loggable(value: Any, limit: int = 256) -> str | None:
    """Text from an event, safe to log: a string cut to `limit`, with what UTF-8 cannot carry (a lone
    surrogate) escaped, so that the log line is written, not lost. None for anything but a string."""
    if not isinstance(value, str):
        return None
    return value[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def check_accounts(trigger: Trigger, settings: Settings, clients: Clients | None = None) -> None:
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
        from .recheck import RecheckQueue  # noqa: PLC0415 - first invocation only

        return len(RecheckQueue(rt.settings, rt.clients).schedule_report(report, report.context.event_id, attempt,
                                                                         include_duplicates))
    except AWS_ERRORS as exc:
        # The decision is recorded and alerted already; the next event or sweep will look again.
        items = report.recheck_refs(include_duplicates) + report.limited_refs()
        logger.error("could not schedule re-checks", extra={"error": error_code(exc),
                                                            "resources": [r.key for r, _ in items]})
        return 0


def sqs_batch(event: Any, record_handler: Callable[[Any], Any]) -> dict[str, Any]:
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
    if not records:  # Powertools raises UnexpectedBatchTypeError on an empty batch: nothing to process
        logger.warning("no SQS record to process: skipped")
        return {"batchItemFailures": []}
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event={**raw, "Records": records}, record_handler=record_handler,
                                         processor=processor, context=getattr(event, "context", None)))
