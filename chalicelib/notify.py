"""Notify: the last stage; SNS and Slack alerts.

Both channels carry the same facts (`build_alert`, schema `netguard.alert/v1`):

* SNS: the alert as a JSON message, with message attributes `severity`, `control`, `action` (the
  decision kind) and `account` for subscription filter policies. Oversized evidence is truncated so the
  message stays under the 256 KB SNS limit.
* Slack: a Block Kit payload posted to an incoming webhook. The webhook URL is a secret (SSM
  SecureString or Secrets Manager): it is resolved at send time, cached for five minutes in-process and
  never logged nor put in an exception message (only `scheme://host/***`). User-controlled text is
  escaped (`&`, `<`, `>`) and kept inside code spans/blocks, where Slack applies no mrkdwn formatting.

Channels are independent: a failure on one never stops the other, and every failure is logged and
handed to the ledger (`record_undelivered`) so that no alert is lost silently.

Import cost is kept tiny: boto3/botocore, urllib.request and ipaddress are imported when first needed.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from .errors import DeliveryError
from .model import EventContext, Outcome, digest

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .aws import Clients
    from .settings import Settings

ALERT_SCHEMA = "netguard.alert/v1"
DIGEST_SCHEMA = "netguard.digest/v1"  # one per sweep: see sweep.digest_alert
NOTICE_SCHEMA = "netguard.notice/v1"  # about netguard itself (a limit reached), not about one resource

DELIVERED = "delivered"
NOT_CONFIGURED = "not-configured"

log = logging.getLogger("netguard.notify")

# --------------------------------------------------------------------------------------------- alert


def _iso_utc(now: datetime | None) -> str:
    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


# ----------------------------------------------------------------------------------------------- SNS

SNS_MAX_BYTES = 256 * 1024
SNS_BATCH_ENTRIES = 10  # PublishBatch's limit
SNS_SUBJECT_MAX = 100
_SNS_MARGIN = 512  # bytes kept free for anything SNS counts that we do not model exactly
_LONG_STRING_CAP = 4096


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
        key: (value[: _LONG_STRING_CAP - 1] + "…" if isinstance(value, str) and len(value) > _LONG_STRING_CAP else value)
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
        from .aws import error_code, error_message  # noqa: PLC0415

        raise DeliveryError(f"SNS publish to {topic_arn} failed: {error_code(exc)}: {error_message(exc)}") from exc
    except BotoCoreError as exc:
        raise DeliveryError(f"SNS publish to {topic_arn} failed: {exc}") from exc


def topic_region(topic_arn: str) -> str | None:
    """REGION of arn:aws:sns:REGION:ACCOUNT:NAME (None when the ARN has no region)."""
    parts = topic_arn.split(":")
    return (parts[3] or None) if len(parts) > 5 and parts[0] == "arn" else None


# ------------------------------------------------------------------------------------- Slack payload

SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_FALLBACK_MAX = 300
_ELLIPSIS = "…"
_BACKTICK_STANDIN = "ˋ"  # U+02CB: looks like a backtick, cannot close a code span
_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack gives meaning to (`<!channel>`, `<url|label>`, entities)."""
    for raw, entity in _ENTITIES:
        text = text.replace(raw, entity)
    return text


def one_line(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs...) to one space."""
    return " ".join(text.split())


def truncate(text: str, limit: int, *, entities: bool = True) -> str:
    """`text` cut to `limit` characters with an ellipsis; with `entities`, never inside an `&...;` entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(_ELLIPSIS), 0)]
    amp = cut.rfind("&") if entities else -1
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + _ELLIPSIS


def _code_safe(text: str) -> str:
    """User text made safe inside a code span/block: escaped, and unable to close the span."""
    return escape_mrkdwn(text.replace("`", _BACKTICK_STANDIN))


def code_span(value: Any, limit: int = SLACK_FIELD_MAX) -> str:
    """One line of user text as an inline code span (no mrkdwn formatting applies inside), <= limit."""
    text = one_line("" if value is None else str(value))
    if not text:
        return "—"
    return f"`{truncate(_code_safe(text), limit - 2)}`"


def code_block(value: str, limit: int = SLACK_SECTION_MAX) -> str:
    """Multi-line user text as a code block, <= limit characters in total."""
    return f"```\n{truncate(_code_safe(value), limit - 8)}\n```"


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not auto-link URLs, @mentions or #channels found in the text.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _field(label: str, value: str) -> dict[str, Any]:
    """A section field: our bold label, then an already-safe value; the whole stays <= 2000 chars."""
    prefix = f"*{label}*\n"
    return _mrkdwn(prefix + truncate(value, SLACK_FIELD_MAX - len(prefix)))


def _section(label: str, body_for: Callable[[int], str]) -> dict[str, Any]:
    prefix = f"*{label}*\n"
    return {"type": "section", "text": _mrkdwn(prefix + body_for(SLACK_SECTION_MAX - len(prefix)))}


def _evidence_text(alert: Mapping[str, Any]) -> str:
    evidence = alert.get("evidence")
    if isinstance(evidence, str):
        return evidence
    return json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def slack_fallback(alert: Mapping[str, Any]) -> str:
    """The notification text (`text`): our words plus the resource id in a code span."""
    head = escape_mrkdwn(
        f"[netguard] {_fact(alert, 'severity').upper()} {_fact(alert, 'control', 'id')}: "
        f"{_fact(alert, 'decision')} {_fact(alert, 'result')} on "
    )
    return head + code_span(_fact(alert, "resource", "id"), max(SLACK_FALLBACK_MAX - len(head), 16))


def digest_blocks(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The Block Kit payload of a sweep digest: totals, violations by control, errors, the report."""
    violations = alert.get("violations") or {}
    lines = [f"{escape_mrkdwn(str(c))}: {n}" for c, n in sorted(violations.items())] or ["none"]
    targets = alert.get("targets") or []
    fields = [
        _field("Accounts/regions", escape_mrkdwn(str(len(targets)))),
        _field("Resources", escape_mrkdwn(str(alert.get("resources", 0)))),
        _field("Remediated", escape_mrkdwn(str(alert.get("remediated", 0)))),
        _field("Failed", escape_mrkdwn(str(alert.get("failed", 0)))),
        _field("New alerts", escape_mrkdwn(str(alert.get("alerts", 0)))),
        _field("Errors", escape_mrkdwn(str(alert.get("error_count", 0)))),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": False, "text": truncate(
            one_line(f"netguard sweep {_fact(alert, 'sweep_id')}"), SLACK_HEADER_MAX, entities=False)}},
        {"type": "section", "fields": fields},
        _section("Violations by control", lambda room: truncate("\n".join(lines), room)),
    ]
    errors = alert.get("errors") or []
    if errors:
        text = "\n".join(f"{e.get('target', '')} {e.get('resource', '')}: {e.get('error', '')}" for e in errors)
        blocks.append(_section("Errors", lambda room: code_block(text, room)))
    if alert.get("report"):
        blocks.append({"type": "context", "elements": [_mrkdwn(f"report {code_span(_fact(alert, 'report'), 1000)}")]})
    return {"text": truncate(escape_mrkdwn(f"[netguard] {_digest_headline(alert)}"), SLACK_FALLBACK_MAX),
            "blocks": blocks}


def slack_blocks(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An incoming-webhook Block Kit payload for `alert` (see module docstring for the escaping rules)."""
    if is_digest(alert):
        return digest_blocks(alert)
    if is_notice(alert):
        title = one_line(f"netguard: {_fact(alert, 'title')}")
        return {"text": truncate(escape_mrkdwn(f"[{title}]"), SLACK_FALLBACK_MAX), "blocks": [
            {"type": "header", "text": {"type": "plain_text", "emoji": False,
                                        "text": truncate(title, SLACK_HEADER_MAX, entities=False)}},
            _section("Detail", lambda room: truncate(escape_mrkdwn(_fact(alert, "text")), room))]}
    severity = _fact(alert, "severity").upper()
    control_id = _fact(alert, "control", "id")
    header = one_line(f"{severity} {control_id}: {_fact(alert, 'control', 'title')}")
    action = _fact(alert, "action")
    decision = escape_mrkdwn(_fact(alert, "decision")) + (f" ({code_span(action, 200)})" if action else "")
    resource = f"{code_span(_fact(alert, 'resource', 'id'), 600)}\n{escape_mrkdwn(_fact(alert, 'resource', 'type'))}"
    arn = _fact(alert, "resource", "arn")
    if arn:
        resource += f"\n{code_span(arn, 1000)}"
    fields = [
        _field("Control", escape_mrkdwn(f"{control_id} {_fact(alert, 'control', 'title')}")),
        _field("Severity", escape_mrkdwn(severity)),
        _field("Resource", resource),
        _field("Account", code_span(_fact(alert, "resource", "account"), 200)),
        _field("Region", code_span(_fact(alert, "resource", "region"), 200)),
        _field("Decision", decision),
        _field("Result", escape_mrkdwn(_fact(alert, "result"))),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(header, SLACK_HEADER_MAX, entities=False), "emoji": False}},
        {"type": "section", "fields": fields},
    ]
    detail = _fact(alert, "detail")
    if detail:
        blocks.append(_section("Detail", lambda room: code_block(detail, room)))
    blocks.append(_section("Evidence", lambda room: code_block(_evidence_text(alert), room)))
    guidance = _fact(alert, "guidance")
    if guidance:
        blocks.append(_section("Guidance", lambda room: truncate(escape_mrkdwn(guidance), room)))
    context = (
        f"event {code_span(_fact(alert, 'event_id'), 200)} {code_span(_fact(alert, 'event_name'), 200)}"
        f" by {code_span(_fact(alert, 'principal'), 1200)}"
        f" · {escape_mrkdwn(_fact(alert, 'trigger'))} · alert {code_span(_fact(alert, 'alert_id'), 64)}"
        f" · {escape_mrkdwn(_fact(alert, 'time'))}"
    )
    blocks.append({"type": "context", "elements": [_mrkdwn(truncate(context, SLACK_FIELD_MAX))]})
    return {"text": slack_fallback(alert), "blocks": blocks}


# ------------------------------------------------------------------------------------- Slack webhook

SLACK_TIMEOUT_SECONDS = 5.0
SLACK_MAX_ATTEMPTS = 4
SLACK_MAX_RETRY_AFTER = 30.0
_URL_PATTERN = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+)[/?#][^\s'\"]*")


def redact_url(url: str) -> str:
    """'https://hooks.slack.com/services/T/B/X' -> 'https://hooks.slack.com/***' (scheme and host only)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<webhook url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/***"


def redact_urls(text: str) -> str:
    """Any URL inside `text` reduced to its scheme and host (defence in depth for error texts)."""
    return _URL_PATTERN.sub(lambda match: match.group(1) + "/***", text)


def _is_loopback(host: str) -> bool:
    import ipaddress  # noqa: PLC0415 - only needed for http:// test URLs

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str) -> None:
    """https only; http only for loopback hosts (local tests). Raises DeliveryError (URL redacted)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        # `from None`: urllib's ValueError quotes pieces of the URL, which is a secret.
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} is malformed") from None
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} contains whitespace or control characters")
    if not host:
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} has no host")
    scheme = parts.scheme.lower()
    if scheme == "https" or (scheme == "http" and _is_loopback(host)):
        return
    raise DeliveryError(
        f"Slack webhook URL {redact_url(url)} refused: only https:// (or http:// to a loopback host) is allowed"
    )


def check_allowed_webhook(url: str, allowed: Sequence[str]) -> None:
    """The webhook URL must start with one of the allowed URL prefixes (NETGUARD_SLACK_ALLOWED_URLS,
    default https://hooks.slack.com/): same scheme, host and port, and a path under the prefix's. Whoever
    can change the stored URL could otherwise send netguard's alerts somewhere they are never read.
    Raises DeliveryError (URL redacted)."""
    try:
        parts = urlsplit(url)
        key = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, parts.username)
    except ValueError:
        raise DeliveryError(f"Slack webhook URL {redact_url(url)} is malformed") from None
    for prefix in allowed:
        try:
            want = urlsplit(prefix)
            if (key[:3] == (want.scheme.lower(), (want.hostname or "").lower(), want.port) and key[3] is None
                    and parts.path.startswith(want.path or "/")):
                return
        except ValueError:
            continue
    raise DeliveryError(f"Slack webhook URL {redact_url(url)} refused: not under an allowed URL "
                        f"(NETGUARD_SLACK_ALLOWED_URLS: {', '.join(redact_url(p) for p in allowed)})")


def retry_after_seconds(value: str | None, cap: float = SLACK_MAX_RETRY_AFTER) -> float | None:
    """A `Retry-After` header in seconds, capped; None when absent or not a number (HTTP dates too)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


class SlackWebhook:
    """POSTs payloads to one Slack incoming webhook with bounded retries.

    Retried: HTTP 429 (waiting `Retry-After`, capped), 5xx and transport errors/timeouts (exponential
    backoff). Not retried: any other status, and redirects (never followed). The URL is checked before any
    network call and only its redacted form (`redacted_url`) is ever logged or raised.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = SLACK_TIMEOUT_SECONDS,
        max_attempts: int = SLACK_MAX_ATTEMPTS,
        backoff: float = 1.0,
        max_backoff: float = 8.0,
        max_retry_after: float = SLACK_MAX_RETRY_AFTER,
        sleep: Callable[[float], Any] = time.sleep,
        logger: Any = None,
    ) -> None:
        check_webhook_url(url)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._url = url
        self.redacted_url = redact_url(url)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._log = logger or log
        self._opener: Any = None

    def __repr__(self) -> str:
        return f"SlackWebhook({self.redacted_url!r})"

    def _open(self, body: bytes) -> None:
        """One POST; returns on 2xx, raises urllib's HTTPError/URLError or a transport error otherwise."""
        import urllib.request  # noqa: PLC0415 - ~80 ms of imports, only paid when Slack is used

        if self._opener is None:
            self._opener = _build_opener(self._url)
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "netguard"},
        )
        with self._opener.open(request, timeout=self.timeout) as response:
            response.read()

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)

    def post(self, payload: Mapping[str, Any]) -> None:
        """Deliver `payload` (a Block Kit message). Raises DeliveryError when it cannot be delivered."""
        import http.client  # noqa: PLC0415
        import urllib.error  # noqa: PLC0415

        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        for attempt in range(1, self.max_attempts + 1):
            try:
                self._open(body)
                return
            except urllib.error.HTTPError as exc:
                status, answer = exc.code, _read_error_body(exc)
                if status == 429:
                    delay = retry_after_seconds(exc.headers.get("Retry-After"), self.max_retry_after)
                    delay = self._backoff(attempt) if delay is None else delay
                elif 500 <= status <= 599:
                    delay = self._backoff(attempt)
                else:
                    raise DeliveryError(
                        f"Slack webhook {self.redacted_url} rejected the message: HTTP {status} {answer}".rstrip()
                    ) from exc
                problem: str = f"HTTP {status} {answer}".rstrip()
                cause: BaseException = exc
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, bad responses
                delay = self._backoff(attempt)
                problem = redact_urls(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
                cause = exc
            if attempt == self.max_attempts:
                raise DeliveryError(
                    f"Slack webhook {self.redacted_url} failed after {attempt} attempts: {problem}"
                ) from cause
            self._log.warning(
                "Slack webhook %s: %s; retry %d/%d in %.1fs",
                self.redacted_url, problem, attempt, self.max_attempts - 1, delay,
            )
            self._sleep(delay)


def _read_error_body(exc: Any) -> str:
    """The first line of an error response body (Slack answers e.g. 'invalid_payload'), closing it."""
    try:
        text = exc.read(512).decode("utf-8", "replace")
    except (OSError, ValueError, AttributeError):
        text = ""
    finally:
        exc.close()
    return redact_urls(one_line(text))[:200]


def _build_opener(url: str) -> Any:
    """A urllib opener that never follows redirects, and never uses a proxy for (loopback) http URLs."""
    import urllib.request  # noqa: PLC0415

    class RefuseRedirects(urllib.request.HTTPRedirectHandler):
        """A webhook never redirects; following one could send the payload elsewhere (or over http)."""

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
            return None  # urllib then raises the 3xx as an HTTPError, which is not retried

    handlers: list[Any] = [RefuseRedirects()]
    if urlsplit(url).scheme.lower() == "http":
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


# --------------------------------------------------------------------------- webhook URL resolution

WEBHOOK_CACHE_SECONDS = 300.0
_SECRETS_ARN_PREFIX = "arn:aws:secretsmanager:"
_SECRETS_PREFIX = "secretsmanager:"
_cache: dict[tuple[str, str | None], tuple[float, str]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached webhook URL (tests; or after rotating the secret)."""
    with _cache_lock:
        _cache.clear()


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return (parts[3] or None) if arn.startswith("arn:") and len(parts) > 5 else None


def _from_secret(secret_string: str) -> str:
    """A SecretString that is the URL itself, or JSON with a `url` / `webhook_url` key."""
    text = secret_string.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in ("url", "webhook_url"):
                if isinstance(data.get(key), str):
                    return data[key].strip()
            raise DeliveryError("the Slack webhook secret is JSON without a 'url' or 'webhook_url' string")
    return text


def _read_webhook_url(param_name: str, clients: "Clients", region: str | None) -> str:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from .aws import error_code  # noqa: PLC0415

    if param_name.startswith(_SECRETS_ARN_PREFIX) or param_name.startswith(_SECRETS_PREFIX):
        secret_id = param_name if param_name.startswith("arn:") else param_name[len(_SECRETS_PREFIX):]
        where = f"Secrets Manager secret {secret_id!r}"
        try:
            answer = clients.client("secretsmanager", region or _arn_region(secret_id)).get_secret_value(
                SecretId=secret_id
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryError(f"cannot read the Slack webhook URL from {where}: {error_code(exc) or exc}") from exc
        if not isinstance(answer.get("SecretString"), str):
            raise DeliveryError(f"{where} has no SecretString")
        value = _from_secret(answer["SecretString"])
    else:
        where = f"SSM parameter {param_name!r}"
        try:
            answer = clients.client("ssm", region or _arn_region(param_name)).get_parameter(
                Name=param_name, WithDecryption=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryError(f"cannot read the Slack webhook URL from {where}: {error_code(exc) or exc}") from exc
        value = str(answer.get("Parameter", {}).get("Value", "")).strip()
    if not value:
        raise DeliveryError(f"{where} holds an empty Slack webhook URL")
    return value


def resend_undelivered(ledger: Any, notifier: "Notifier", time_left: Callable[[], float] | None = None,
                       margin: float | None = None) -> dict[str, int]:
    """Try again every alert a channel did not take (ledger `alert#undelivered`), oldest first: a delivered
    one is removed from the ledger, a failed one stays for the next try. Run by every sweep. A channel
    that fails RESEND_GIVE_UP_AFTER times in a row is not tried again in this run; what is left when the
    invocation's time runs short (`time_left` below `margin` seconds; by default half of what was left
    when it started, the rest being the sweep's) is counted and left for the next sweep."""
    counts = {"resent": 0, "still_undelivered": 0, "left_for_next_sweep": 0}
    if time_left is not None and margin is None:
        margin = time_left() / 2
    failures: dict[str, int] = {}  # consecutive failures by channel: after 3, that channel waits for the next sweep
    for item in ledger.undelivered():
        channel = item["channel"]
        if failures.get(channel, 0) >= RESEND_GIVE_UP_AFTER:
            counts["still_undelivered"] += 1
            continue
        if time_left is not None and margin is not None and time_left() < margin:
            counts["left_for_next_sweep"] += 1
            continue
        notifier._down.pop(channel, None)  # a resend is tried even right after a failure (bounded above)
        if notifier.resend(item["alert"], channel) == DELIVERED:
            ledger.settle_undelivered(item["sk"])
            counts["resent"] += 1
            failures[channel] = 0
        else:
            counts["still_undelivered"] += 1
            failures[channel] = failures.get(channel, 0) + 1
    if any(counts.values()):
        log.info("undelivered alerts: %d re-sent, %d still undelivered, %d left for the next sweep (time)",
                 counts["resent"], counts["still_undelivered"], counts["left_for_next_sweep"])
    return counts


def resolve_webhook_url(
    param_name: str, clients: "Clients", region: str | None = None, *, clock: Callable[[], float] = time.monotonic
) -> str:
    """The Slack webhook URL stored in SSM (SecureString) or Secrets Manager, cached for 5 minutes.

    `param_name`: an SSM parameter name (or ARN); `secretsmanager:NAME`; or a Secrets Manager ARN.
    Raises DeliveryError if it cannot be read. The value is never logged.
    """
    key = (param_name, region)
    now = clock()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and now - cached[0] < WEBHOOK_CACHE_SECONDS:
            return cached[1]
    value = _read_webhook_url(param_name, clients, region)
    with _cache_lock:
        _cache[key] = (now, value)
    return value


# ---------------------------------------------------------------------------------------- Notifier


CHANNEL_PAUSE_SECONDS = 60.0
RESEND_GIVE_UP_AFTER = 3  # consecutive failed re-sends on a channel before the sweep leaves it to the next one
UNDELIVERED_RECORD_ATTEMPTS = 3  # each already retried by botocore; then the alert goes to the log whole


class Notifier:
    """Delivers alerts to every configured channel, independently, never losing a failure silently."""

    def __init__(
        self,
        settings: "Settings",
        clients: "Clients",
        ledger: Any = None,
        slack_sleep: Callable[[float], Any] = time.sleep,
        logger: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.ledger = ledger
        self.slack_sleep = slack_sleep
        self.log = logger or log
        self.clock = clock
        # A channel that just failed (after its own bounded retries) is not tried again for a while:
        # an outage must not spend the function's time limit on retries, alert after alert.
        self._down: dict[str, tuple[float, str]] = {}
        # Told of every alert a channel did not take (the Lambdas count it: metric `undelivered`, alarmed)
        self.on_undelivered: Callable[[str], Any] | None = None

    def send(self, alert: Mapping[str, Any]) -> dict[str, str]:
        """{"sns": ..., "slack": ...}, each "delivered", "failed: <error>" or "not-configured"."""
        results = {"sns": NOT_CONFIGURED, "slack": NOT_CONFIGURED}
        if self.settings.alert_topic_arn:
            results["sns"] = self._deliver("sns", alert, self._send_sns)
        if self.settings.slack_webhook_param:
            results["slack"] = self._deliver("slack", alert, self._send_slack)
        return results

    def send_all(self, alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """send() for the alerts of one run, with the same results and failure handling per alert:
        SNS takes them in PublishBatch calls (10 at most, 256 KB in all), Slack one post each."""
        if len(alerts) <= 1:
            return [self.send(alert) for alert in alerts]
        results = [{"sns": NOT_CONFIGURED, "slack": NOT_CONFIGURED} for _ in alerts]
        if self.settings.alert_topic_arn:
            for index, result in enumerate(self._deliver_sns_batches(alerts)):
                results[index]["sns"] = result
        if self.settings.slack_webhook_param:
            for index, alert in enumerate(alerts):
                results[index]["slack"] = self._deliver("slack", alert, self._send_slack)
        return results

    def _deliver_sns_batches(self, alerts: Sequence[Mapping[str, Any]]) -> list[str]:
        """SNS's result for each alert, sent in PublishBatch calls: the first alone (an outage costs
        one call, then pauses the channel), the others concurrently."""
        from .aws import AWS_ERRORS, concurrently, error_code, error_message  # noqa: PLC0415

        topic_arn = str(self.settings.alert_topic_arn)
        out = [""] * len(alerts)
        batches = sns_batches(alerts)
        for index in set(range(len(alerts))) - {i for batch in batches for i, _ in batch}:
            out[index] = self._deliver("sns", alerts[index], self._send_sns)  # too big even alone: says why

        def publish(batch: list[tuple[int, dict[str, Any]]]) -> dict[int, str]:
            """The alerts of `batch` SNS did not take: index -> why."""
            paused = self._paused("sns")
            if paused is not None:
                return {i: paused for i, _ in batch}
            try:
                answer = self.clients.client("sns", topic_region(topic_arn)).publish_batch(
                    TopicArn=topic_arn, PublishBatchRequestEntries=[entry for _, entry in batch])
            except AWS_ERRORS as exc:
                error = redact_urls(f"SNS publish to {topic_arn} failed: {error_code(exc)}: {error_message(exc)}")
            except Exception as exc:  # noqa: BLE001 - the same isolation boundary as _deliver
                error = redact_urls(f"unexpected {type(exc).__name__}: {exc}")
            else:
                self._down.pop("sns", None)
                return {int(f["Id"]): redact_urls(f"SNS publish to {topic_arn} failed: {f.get('Code')}: "
                                                  f"{f.get('Message', '')}") for f in answer.get("Failed", [])}
            self._pause("sns", error)
            return {i: error for i, _ in batch}

        failures = [publish(batch) for batch in batches[:1]]
        failures += concurrently(publish, batches[1:], self.settings.read_concurrency, "netguard-sns")
        for batch, failed in zip(batches, failures):
            for index, _ in batch:
                if index in failed:
                    self._undelivered(alerts[index], "sns", failed[index])
                    out[index] = f"failed: {failed[index]}"
                else:
                    out[index] = DELIVERED
        return out

    def _paused(self, channel: str) -> str | None:
        """Why `channel` is not tried now (it failed within CHANNEL_PAUSE_SECONDS), or None."""
        down = self._down.get(channel)
        if down is not None and self.clock() < down[0]:
            return f"not attempted: {channel} failed {CHANNEL_PAUSE_SECONDS:.0f} s ago or less ({down[1]})"
        return None

    def _pause(self, channel: str, error: str) -> None:
        self._down[channel] = (self.clock() + CHANNEL_PAUSE_SECONDS, error[:200])

    def resend(self, alert: Mapping[str, Any], channel: str) -> str:
        """Deliver an alert a channel did not take earlier, on that channel only: "delivered" or
        "failed: ..." (not recorded again: the caller keeps the original record until it succeeds)."""
        send = {"sns": self._send_sns, "slack": self._send_slack}.get(channel)
        configured = {"sns": self.settings.alert_topic_arn, "slack": self.settings.slack_webhook_param}.get(channel)
        if send is None or not configured:
            return f"failed: channel {channel} is not configured"
        paused = self._paused(channel)
        if paused is not None:
            return f"failed: {paused}"
        try:
            send(alert)
        except Exception as exc:  # noqa: BLE001 - same isolation as _deliver
            error = redact_urls(str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}")
            self._pause(channel, error)
            return f"failed: {error}"
        self._down.pop(channel, None)
        return DELIVERED

    def _send_sns(self, alert: Mapping[str, Any]) -> None:
        topic_arn = str(self.settings.alert_topic_arn)
        publish_sns(self.clients.client("sns", topic_region(topic_arn)), topic_arn, alert)

    def _send_slack(self, alert: Mapping[str, Any]) -> None:
        url = resolve_webhook_url(str(self.settings.slack_webhook_param), self.clients)
        check_allowed_webhook(url, self.settings.slack_allowed_urls)
        SlackWebhook(url, sleep=self.slack_sleep, logger=self.log).post(slack_blocks(alert))

    def _deliver(self, channel: str, alert: Mapping[str, Any], send: Callable[[Mapping[str, Any]], None]) -> str:
        paused = self._paused(channel)
        if paused is not None:
            self._undelivered(alert, channel, paused)
            return f"failed: {paused}"
        try:
            send(alert)
        except DeliveryError as exc:
            error = redact_urls(str(exc))
        except Exception as exc:  # noqa: BLE001 - isolation boundary: one channel's bug must not stop the other
            error = redact_urls(f"unexpected {type(exc).__name__}: {exc}")
        else:
            self._down.pop(channel, None)
            return DELIVERED
        self._pause(channel, error)
        self._undelivered(alert, channel, error)
        return f"failed: {error}"

    def _undelivered(self, alert: Mapping[str, Any], channel: str, error: str) -> None:
        self.log.warning("alert %s not delivered on %s: %s", _fact(alert, "alert_id"), channel, error)
        if self.on_undelivered is not None:
            self.on_undelivered(channel)
        if self.ledger is None:
            return
        failure = ""
        for _ in range(UNDELIVERED_RECORD_ATTEMPTS):
            try:
                self.ledger.record_undelivered(alert, channel, error)
                return
            except Exception as exc:  # noqa: BLE001 - duck-typed ledger; its failure must still be visible
                failure = redact_urls(f"{type(exc).__name__}: {exc}")
        # Not in the ledger either: the log line carries the whole alert, so it can still be recovered.
        self.log.error("alert %s: recording the %s delivery failure failed too (%s); the alert: %s",
                       _fact(alert, "alert_id"), channel, failure,
                       redact_urls(json.dumps(alert, sort_keys=True, default=str)))
