"""Alerts as data: what both channels carry, built once and channel-agnostic.

Three kinds, told apart by `schema`: an alert about one resource's finding (`build_alert`,
`netguard.alert/v1`), a sweep digest (`netguard.digest/v1`, built by sweep.digest_alert) and a notice about
netguard itself (`build_notice`, `netguard.notice/v1`). Alerts are plain JSON-ready data so that they can be
stored in the ledger when undelivered and re-sent later; `_fact` reads them back tolerantly.

No channel is imported here: SNS and Slack render these dicts, never the reverse.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..model import EventContext, Outcome, digest

ALERT_SCHEMA = "netguard.alert/v1"
DIGEST_SCHEMA = "netguard.digest/v1"  # one per sweep: see sweep.digest_alert
NOTICE_SCHEMA = "netguard.notice/v1"  # about netguard itself (a limit reached), not about one resource


def _iso_utc(now: datetime | None) -> str:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Any) -> Any:
    """`value` as plain JSON data (Mappings -> dicts, tuples -> lists, anything else -> str)."""
    return json.loads(json.dumps(value, default=str))


def _detail(outcome: Outcome) -> str:
    """What happened or why nothing did (outcome.detail), followed by the decision's reason."""
    parts: list[str] = []
    for part in (outcome.detail, outcome.decision.reason):
        text = (part or "").strip()
        if text and text not in parts:
            parts.append(text)
    return " — ".join(parts)


def alert_id(context: EventContext, outcome: Outcome) -> str:
    """Deterministic id: the same event, control, resource and decision kind give the same id."""
    finding = outcome.decision.finding
    return digest([context.event_id, finding.control.id, finding.resource.ref.key, outcome.decision.kind])


def build_alert(
    context: EventContext, outcome: Outcome, account: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The facts of one alert (BASELINE "Alerts"), as plain JSON-ready data. Pure but for `now`."""
    decision = outcome.decision
    finding = decision.finding
    control = finding.control
    resource = finding.resource
    ref = resource.ref
    return {
        "schema": ALERT_SCHEMA,
        "alert_id": alert_id(context, outcome),
        "control": {"id": control.id, "title": control.title},
        "severity": control.severity,
        "verdict": finding.status,
        "resource": {
            "type": ref.resource_type,
            "id": ref.resource_id,
            "arn": resource.arn,
            "account": account or ref.account,
            "region": ref.region,
        },
        "evidence": _plain(finding.evidence),
        "decision": decision.kind,
        "action": decision.action or None,
        "result": outcome.result,
        "detail": _detail(outcome),
        "reason": decision.reason,
        "action_id": outcome.action_id,
        "principal": context.principal,
        "event_id": context.event_id,
        "event_name": context.event_name,
        "trigger": context.trigger,
        "guidance": control.guidance,
        "time": _iso_utc(now),
    }


def _fact(alert: Mapping[str, Any], *path: str) -> str:
    """A nested alert value as text ('' when missing), tolerant of alerts read back from storage."""
    value: Any = alert
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def is_digest(alert: Mapping[str, Any]) -> bool:
    return alert.get("schema") == DIGEST_SCHEMA


def is_notice(alert: Mapping[str, Any]) -> bool:
    return alert.get("schema") == NOTICE_SCHEMA


def build_notice(notice_id: str, title: str, text: str, account: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """An alert about netguard itself (e.g. its blast-radius limit reached)."""
    return {"schema": NOTICE_SCHEMA, "alert_id": notice_id, "title": title, "text": text, "account": account,
            "severity": "high", "time": _iso_utc(now)}


def _digest_headline(alert: Mapping[str, Any]) -> str:
    violations = alert.get("violations") or {}
    return (f"sweep {_fact(alert, 'sweep_id')}: {alert.get('resources', 0)} resources, "
            f"{sum(violations.values())} violations, {alert.get('remediated', 0)} remediated, "
            f"{alert.get('error_count', 0)} errors")


def _evidence_text(alert: Mapping[str, Any]) -> str:
    evidence = alert.get("evidence")
    if isinstance(evidence, str):
        return evidence
    return json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False, default=str)
