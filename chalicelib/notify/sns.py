"""The SNS channel: an alert as one JSON message, with the attributes subscription filters match on.

Message attributes `severity`, `control`, `action` (the decision kind) and `account` (digests and notices
carry `kind` instead). Oversized evidence is replaced by a truncated preview so that the message, subject
and attributes stay under SNS's 256 KB; several alerts go out in PublishBatch calls packed within the same
limits. botocore is imported only when publishing.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DeliveryError
from .alerts import _digest_headline, _fact, is_digest, is_notice

SNS_MAX_BYTES = 256 * 1024
SNS_BATCH_ENTRIES = 10  # PublishBatch's limit
SNS_SUBJECT_MAX = 100
_SNS_MARGIN = 512  # bytes kept free for anything SNS counts that we do not model exactly
_LONG_STRING_CAP = 4096


def sns_subject(alert: Mapping[str, Any]) -> str:
    """'[netguard] HIGH NB.1 nb-name: remediate succeeded': ASCII printable, one line, <= 100 chars."""
    raw = (
        f"[netguard] {_fact(alert, 'severity').upper()} {_fact(alert, 'control', 'id')} "
        f"{_fact(alert, 'resource', 'id')}: {_fact(alert, 'decision')} {_fact(alert, 'result')}"
    ) if not is_digest(alert) else f"[netguard] {_digest_headline(alert)}"
    if is_notice(alert):
        raw = f"[netguard] {_fact(alert, 'title')}"
    text = " ".join(raw.split())
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    if len(text) > SNS_SUBJECT_MAX:
        text = text[: SNS_SUBJECT_MAX - 3].rstrip() + "..."
    return text


def sns_attributes(alert: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The message attributes subscription filter policies match on (SNS rejects empty values)."""
    values = {
        "severity": _fact(alert, "severity"),
        "control": _fact(alert, "control", "id"),
        "action": _fact(alert, "decision"),
        "account": _fact(alert, "resource", "account"),
    } if not is_digest(alert) else {"kind": "digest", "severity": "informational"}
    if is_notice(alert):
        values = {"kind": "notice", "severity": _fact(alert, "severity"), "account": _fact(alert, "account")}
    return {name: {"DataType": "String", "StringValue": value or "unknown"} for name, value in values.items()}


def _dumps(alert: Mapping[str, Any]) -> str:
    return json.dumps(alert, ensure_ascii=False, default=str)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cap_long_strings(alert: Mapping[str, Any]) -> dict[str, Any]:
    """Last resort for absurd alerts: cap every top-level string (detail, guidance...)."""
    return {
        key: (value[: _LONG_STRING_CAP - 1] + "…" if isinstance(value, str) and len(value) > _LONG_STRING_CAP
              else value)
        for key, value in alert.items()
    }


def _with_preview(alert: Mapping[str, Any], preview: str) -> dict[str, Any]:
    return {**alert, "evidence": {"truncated": True, "preview": preview}}


def fit_message(alert: Mapping[str, Any], max_bytes: int) -> tuple[dict[str, Any], str]:
    """`alert` and its JSON, with the evidence replaced by a truncated preview when the JSON is too big.

    Raises DeliveryError if even an alert without evidence cannot fit.
    """
    body = _dumps(alert)
    if _size(body) <= max_bytes:
        return dict(alert), body
    evidence_json = json.dumps(alert.get("evidence"), ensure_ascii=False, sort_keys=True, default=str)
    base = _with_preview(alert, "")
    if _size(_dumps(base)) > max_bytes:
        base = _cap_long_strings(base)
    base_size = _size(_dumps(base))
    room = max_bytes - base_size
    if room < 0:
        raise DeliveryError(f"alert {_fact(alert, 'alert_id')} cannot fit in {max_bytes} bytes")
    keep = min(len(evidence_json), room)  # a character is at least one byte
    while True:
        candidate = _with_preview(base, evidence_json[:keep])
        body = _dumps(candidate)
        used = _size(body) - base_size  # bytes the preview takes once UTF-8 and JSON-escaped
        if used <= room:
            return candidate, body
        keep = max(min(keep - 1, keep * room // used), 0)  # scale down by the observed bytes per character


def sns_message(alert: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Publish's parameters for `alert` (Message, Subject, MessageAttributes), the message fitted so
    that all of it stays within SNS's 256 KB, and the bytes SNS counts for it."""
    subject = sns_subject(alert)
    attributes = sns_attributes(alert)
    attributes_size = sum(
        _size(name) + _size(value["DataType"]) + _size(value["StringValue"]) for name, value in attributes.items()
    )
    budget = SNS_MAX_BYTES - attributes_size - _size(subject) - _SNS_MARGIN
    _, message = fit_message(alert, budget)
    return ({"Message": message, "Subject": subject, "MessageAttributes": attributes},
            _size(message) + _size(subject) + attributes_size)


def sns_batches(alerts: Sequence[Mapping[str, Any]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """PublishBatch entries of `alerts`, by index, packed into batches within SNS's limits (10 entries,
    256 KB in all). An alert that cannot fit at all is left out (publish_sns reports it)."""
    batches: list[list[tuple[int, dict[str, Any]]]] = []
    size = 0
    for index, alert in enumerate(alerts):
        try:
            params, bytes_ = sns_message(alert)
        except DeliveryError:
            continue
        if not batches or len(batches[-1]) == SNS_BATCH_ENTRIES or size + bytes_ > SNS_MAX_BYTES - _SNS_MARGIN:
            batches.append([])
            size = 0
        batches[-1].append((index, {"Id": str(index), **params}))
        size += bytes_
    return batches


def publish_sns(sns_client: Any, topic_arn: str, alert: Mapping[str, Any]) -> None:
    """Publish `alert` as JSON to `topic_arn`. Raises DeliveryError on failure."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - keep botocore off import

    params, _ = sns_message(alert)
    try:
        sns_client.publish(TopicArn=topic_arn, **params)
    except ClientError as exc:
        from ..aws import error_code, error_message  # noqa: PLC0415

        raise DeliveryError(f"SNS publish to {topic_arn} failed: {error_code(exc)}: {error_message(exc)}") from exc
    except BotoCoreError as exc:
        raise DeliveryError(f"SNS publish to {topic_arn} failed: {exc}") from exc


def topic_region(topic_arn: str) -> str | None:
    """REGION of arn:aws:sns:REGION:ACCOUNT:NAME (None when the ARN has no region)."""
    parts = topic_arn.split(":")
    return (parts[3] or None) if len(parts) > 5 and parts[0] == "arn" else None
