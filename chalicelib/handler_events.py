"""The EventBridge handlers (on_api_call, on_state_change, on_compliance_change): each turns its event
into a Trigger and runs the pipeline once, with event-level idempotency (Powertools, in the ledger
table). A malformed or foreign event is logged with its id and skipped, never acted on."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice.app import CloudWatchEvent

from .configrule import compliance_change_pattern, refs_from_compliance_change
from .errors import IgnoredEvent, InvalidEvent
from .handler_support import (
    EmfTelemetry,
    RuntimeSource,
    check_accounts,
    loggable,
    logger,
    schedule_rechecks,
    summary,
)
from .model import EventContext, Trigger
from .policy import Policy
from .triggers import (
    api_call_pattern,
    from_api_call,
    from_state_change,
    state_change_pattern,
    watched_types,
)


def covered_types(policy: Policy) -> list[str]:
    """What the controls evaluate, and the shared resources whose changes re-evaluate it."""
    return watched_types({t for c in policy.controls if c.mode != "off" for t in c.resource_types})


def event_patterns(policy: Policy) -> dict[str, dict[str, Any]]:
    """The EventBridge pattern of each event handler, derived from the controls."""
    types = covered_types(policy)
    return {"on_api_call": api_call_pattern(types), "on_state_change": state_change_pattern(types),
            "on_compliance_change": compliance_change_pattern(policy)}


def parse_event(kind: str, raw: Any, policy: Policy) -> Trigger:
    if kind == "on_api_call":
        return from_api_call(raw, covered_types(policy))
    if kind == "on_compliance_change":
        event_id, rule_name, ref, identifier = refs_from_compliance_change(raw, policy)
        context = EventContext(event_id, "config-compliance-change", event_name=f"{rule_name} ({identifier})",
                               event_time=raw.get("time") if isinstance(raw.get("time"), str) else None)
        return Trigger(context, (ref,))
    return from_state_change(raw)


def handle_event(kind: str, event: CloudWatchEvent, runtime: RuntimeSource) -> dict[str, Any]:
    raw = event.to_dict()
    event_id = loggable(raw.get("id")) if isinstance(raw, Mapping) else None
    logger.set_correlation_id(event_id)
    logger.append_keys(handler=kind)
    context = event.context
    rt = runtime()
    try:
        trigger = parse_event(kind, raw, rt.policy)
        check_accounts(trigger, rt.settings, rt.clients)
    except InvalidEvent as exc:
        logger.warning("malformed event skipped", extra={"event_id": loggable(exc.event_id) or event_id,
                                                         "reason": loggable(exc.reason)})
        return {"skipped": "invalid", "reason": exc.reason, "event_id": exc.event_id or event_id}
    except IgnoredEvent as exc:
        logger.info("event ignored", extra={"event_id": loggable(exc.event_id), "reason": loggable(exc.reason)})
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
