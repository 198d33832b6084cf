"""The Slack channel's payload: an alert as a Block Kit message for an incoming webhook.

User-controlled text is escaped (`&`, `<`, `>`) and kept inside code spans/blocks, where Slack applies no
mrkdwn formatting; every text is cut to the size Slack accepts for its block. Posting the payload (and
finding out where to) is slack_webhook's job.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .alerts import _digest_headline, _evidence_text, _fact, is_digest, is_notice

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
        {"type": "header", "text": {"type": "plain_text", "text": truncate(header, SLACK_HEADER_MAX, entities=False),
                                    "emoji": False}},
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
