"""AWS Config: the custom rule evaluator and the managed rules' compliance changes.

Custom rule (`config_rule`, invoked by Config):
- ConfigurationItemChangeNotification: the configuration item names one resource; netguard reads it
  live and evaluates it with the same code as the events (Config's copy of the configuration is
  not what the checks read: they need the subnets, route tables and security groups around it).
- OversizedConfigurationItemChangeNotification: the item was too large to send; netguard fetches
  it (GetResourceConfigHistory, latest) to learn its status, then proceeds as above.
- ScheduledNotification: every resource of the rule's scope in the account and region.
A deleted resource, or one that left the rule's scope, is NOT_APPLICABLE. The answer goes back with
PutEvaluations in batches of at most 100, each with an annotation of at most 256 characters naming
the failing controls. Decisions follow the controls' modes like every other trigger: nothing is
remediated unless the stage and the control are in enforce mode.

Types AWS Config does not record (training, processing, tuning and transform jobs, endpoints) are
covered by the events and the sweeps.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .aws import Clients, error_code
from .errors import IgnoredEvent, InvalidEvent
from .model import COMPLIANT, DOMAIN, NON_COMPLIANT, NOT_APPLICABLE, Finding, Outcome, ResourceRef
from .policy import Policy
from .resources import BY_TYPE, CONFIG_RECORDED
from .triggers import ACCOUNT_RE, REGION_RE, clean_text

log = logging.getLogger("netguard.config")

# The resource types netguard evaluates that AWS Config records (and so can trigger the custom rule on).
CONFIG_TYPES = CONFIG_RECORDED
CHANGE = "ConfigurationItemChangeNotification"
OVERSIZED = "OversizedConfigurationItemChangeNotification"
SCHEDULED = "ScheduledNotification"
DELETED_STATUSES = ("ResourceDeleted", "ResourceDeletedNotRecorded", "ResourceNotRecorded")
EVALUATIONS_PER_CALL = 100  # PutEvaluations limit
ANNOTATION_MAX = 256  # PutEvaluations limit
TEST_TOKEN = "TESTMODE"  # what `aws configservice` test invocations (and our tests) pass as resultToken
# SageMaker resources are named in ARNs after this prefix; Config may give the ARN, an id or the name.
_ARN_PREFIXES = {t: f"{BY_TYPE[t].arn_resource}/" for t in CONFIG_RECORDED if BY_TYPE[t].service == "sagemaker"}
# How SageMaker names what it reads by name (another name is a ValidationException, not "not found").
_NAME_PATTERNS = {t: BY_TYPE[t].id_pattern for t in _ARN_PREFIXES}
# PutEvaluations' limits on what goes back to Config
RULE_NAME_MAX, RESOURCE_TYPE_MAX, RESOURCE_ID_MAX, TOKEN_MAX = 128, 256, 768, 65536


@dataclass(frozen=True)
class RuleInvocation:
    """What Config asked: one configuration item, or (scheduled) every resource in scope."""

    message_type: str
    rule_name: str
    account: str
    region: str
    result_token: str
    event_left_scope: bool
    notification_time: dt.datetime
    item: Mapping[str, Any] | None  # the configuration item (or its summary, when oversized)

    @property
    def test_mode(self) -> bool:
        return self.result_token == TEST_TOKEN

    @property
    def ordering_time(self) -> dt.datetime:
        """PutEvaluations' OrderingTimestamp: when the configuration item was captured (Config orders an
        evaluation by it against the item's own history), else, for a periodic run, the notification's time."""
        captured = (self.item or {}).get("configurationItemCaptureTime")
        return _time(captured, self.notification_time) if isinstance(captured, str) else self.notification_time

    @property
    def event_id(self) -> str:
        stamp = self.notification_time.strftime("%Y%m%dT%H%M%S.%fZ")
        item = self.item or {}
        what = f"{item.get('resourceType', '')}/{item.get('resourceId', '')}" if item else "scheduled"
        return f"config:{self.rule_name}:{what}:{stamp}"[:128]


def _time(value: Any, default: dt.datetime | None = None) -> dt.datetime:
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    return default or dt.datetime.now(dt.UTC)


def _region_of_rule(arn: Any) -> str | None:
    parts = arn.split(":") if isinstance(arn, str) else []
    return parts[3] if len(parts) > 5 and parts[2] == "config" else None


def parse_invocation(event: Any, default_region: str | None = None) -> RuleInvocation:
    """Validate a custom rule invocation; InvalidEvent (logged, skipped) when it is not one."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"config rule event is a {type(event).__name__}, not an object")
    rule_name = clean_text(event.get("configRuleName"), RULE_NAME_MAX)
    token = clean_text(event.get("resultToken"), TOKEN_MAX)
    if rule_name is None or token is None:
        raise InvalidEvent("not an AWS Config rule invocation (configRuleName, resultToken)")
    try:
        invoking = json.loads(event.get("invokingEvent") or "")
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json parses
        raise InvalidEvent(f"invokingEvent is not JSON: {str(exc)[:200]}", rule_name) from exc
    if not isinstance(invoking, Mapping):
        raise InvalidEvent("invokingEvent is not an object", rule_name)
    message_type = invoking.get("messageType")
    if message_type not in (CHANGE, OVERSIZED, SCHEDULED):
        raise IgnoredEvent(f"messageType {str(message_type)[:64]!r} is not evaluated", rule_name)
    item = None
    if message_type != SCHEDULED:
        item = invoking.get("configurationItem" if message_type == CHANGE else "configurationItemSummary")
        # its type and id go back to Config in PutEvaluations: printable, within the API's limits
        if not (isinstance(item, Mapping) and clean_text(item.get("resourceType"), RESOURCE_TYPE_MAX)
                and clean_text(item.get("resourceId"), RESOURCE_ID_MAX)):
            raise InvalidEvent(f"{message_type} without a usable configuration item (resourceType, resourceId)",
                               rule_name)
        pattern = _NAME_PATTERNS.get(item["resourceType"])
        name = config_resource_name(item["resourceType"], item)
        if pattern is not None and not pattern.match(name):
            raise InvalidEvent(f"{item['resourceType']} {name[:64]!r}: not a name SageMaker has", rule_name)
    account = (item or {}).get("awsAccountId") or event.get("accountId") or invoking.get("awsAccountId")
    region = (item or {}).get("awsRegion") or _region_of_rule(event.get("configRuleArn")) or default_region
    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise InvalidEvent("missing or invalid account id", rule_name)
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise InvalidEvent("missing or invalid region", rule_name)
    left = event.get("eventLeftScope") is True or str(event.get("eventLeftScope")).lower() == "true"
    return RuleInvocation(message_type, rule_name, account, region, token, left,
                          _time(invoking.get("notificationCreationTime")), item)


def config_resource_name(resource_type: str, item: Mapping[str, Any]) -> str:
    """The id netguard reads a resource by (a SageMaker name, a domain id, an EC2 id) from a configuration
    item. SageMaker resources are read by name, which keeps its case: Config's resourceName, else its
    resourceId; never the ARN while either is there, since SageMaker ARNs are lower-cased (a notebook
    "NB-Prod" read as "nb-prod" is not found, and would be reported NOT_APPLICABLE). Domains by id."""
    resource_id = str(item.get("resourceId", ""))
    prefix = _ARN_PREFIXES.get(resource_type)
    if prefix is None:
        return resource_id
    name = item.get("resourceName")
    if resource_type == DOMAIN:
        if BY_TYPE[DOMAIN].id_pattern.match(resource_id):
            return resource_id
    elif isinstance(name, str) and name:
        return name  # not a name SageMaker has: parse_invocation rejects the item
    elif resource_id and not resource_id.startswith("arn:"):
        return resource_id
    for candidate in (resource_id, str(item.get("ARN") or "")):  # the last resort: a lower-cased name
        if candidate.startswith("arn:") and prefix in candidate:
            return candidate.split(prefix, 1)[1]
    return resource_id


def fetch_item(clients: Clients, inv: RuleInvocation) -> Mapping[str, Any]:
    """The latest configuration item of an oversized notification (its summary is all Config sent)."""
    summary = inv.item or {}
    try:
        answer = clients.client("config", inv.region, inv.account).get_resource_config_history(
            resourceType=summary["resourceType"], resourceId=summary["resourceId"], limit=1)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotDiscoveredException":
            raise
        log.info("Config has no history of %s %s: using the notification's summary", summary["resourceType"],
                 summary["resourceId"])
        return summary
    items = answer.get("configurationItems") or []
    if not items:
        return summary
    latest = dict(items[0])
    latest.setdefault("configurationItemStatus", summary.get("configurationItemStatus"))
    return latest


def annotation(findings: Iterable[Finding], outcomes: Mapping[int, Outcome]) -> str:
    """'NB.1 direct internet access…; SG.1 …' within Config's 256 characters, with what netguard did."""
    parts = []
    for finding in findings:
        outcome = outcomes.get(id(finding))
        done = f" [{outcome.decision.kind}: {outcome.result}]" if outcome else ""
        parts.append(f"{finding.control.id} {finding.control.title}{done}")
    text = "; ".join(parts)
    return text if len(text) <= ANNOTATION_MAX else text[:ANNOTATION_MAX - 1] + "…"


def evaluation(ref: ResourceRef, config_id: str, findings: list[Finding], outcomes: Mapping[int, Outcome],
               when: dt.datetime) -> dict[str, Any]:
    """One resource's evaluation: NON_COMPLIANT if any control fails, COMPLIANT if any passes and none
    fails, NOT_APPLICABLE otherwise."""
    failing = [f for f in findings if f.status == NON_COMPLIANT]
    if failing:
        status = NON_COMPLIANT
    elif any(f.status == COMPLIANT for f in findings):
        status = COMPLIANT
    else:
        status = NOT_APPLICABLE
    out = {"ComplianceResourceType": ref.resource_type, "ComplianceResourceId": config_id,
           "ComplianceType": status, "OrderingTimestamp": when}
    if failing:
        out["Annotation"] = annotation(sorted(failing, key=lambda f: f.control.id), outcomes)
    return out


def not_applicable(resource_type: str, config_id: str, when: dt.datetime, why: str) -> dict[str, Any]:
    return {"ComplianceResourceType": resource_type, "ComplianceResourceId": config_id,
            "ComplianceType": NOT_APPLICABLE, "OrderingTimestamp": when, "Annotation": why[:ANNOTATION_MAX]}


def put_evaluations(clients: Clients, inv: RuleInvocation, evaluations: list[dict[str, Any]]) -> int:
    """Send the evaluations in calls of at most 100; returns how many Config rejected (logged)."""
    config = clients.client("config", inv.region, inv.account)
    failed = 0
    for start in range(0, len(evaluations), EVALUATIONS_PER_CALL):
        batch = evaluations[start:start + EVALUATIONS_PER_CALL]
        answer = config.put_evaluations(Evaluations=batch, ResultToken=inv.result_token, TestMode=inv.test_mode)
        rejected = answer.get("FailedEvaluations") or []
        for item in rejected:
            log.error("Config rejected the evaluation of %s %s", item.get("ComplianceResourceType"),
                      item.get("ComplianceResourceId"))
        failed += len(rejected)
    return failed


# ------------------------------------------------------------------ managed rules: compliance change


def refs_from_compliance_change(event: Any, policy: Policy) -> tuple[str, str, ResourceRef, str]:
    """(event id, rule name, the resource, the managed rule identifier) of a NON_COMPLIANT
    "Config Rules Compliance Change" event from a rule listed in policies/config-rules.toml."""
    from .triggers import _envelope  # noqa: PLC0415 - the shared EventBridge envelope validation

    event_id, account, region, detail = _envelope(event, ("Config Rules Compliance Change",))
    rule_name = clean_text(detail.get("configRuleName"), RULE_NAME_MAX)  # it goes into the ledger and alerts
    if rule_name is None:
        raise InvalidEvent("detail.configRuleName missing or invalid", event_id)
    result = detail.get("newEvaluationResult")
    status = result.get("complianceType") if isinstance(result, Mapping) else None
    if status != NON_COMPLIANT:
        raise IgnoredEvent(f"{rule_name}: new result is {str(status)[:32]}, not NON_COMPLIANT", event_id)
    rule = policy.config_rule_for(rule_name)
    if rule is None:
        raise IgnoredEvent(f"Config rule {rule_name[:128]!r} is not one netguard maps to its controls", event_id)
    rtype, rid = detail.get("resourceType"), detail.get("resourceId")
    if rtype not in rule.resource_types or clean_text(rid, 256) is None:
        raise InvalidEvent(f"{rule_name}: resource {str(rtype)[:64]} / {str(rid)[:64]} is not what the rule "
                           f"evaluates ({', '.join(rule.resource_types)})", event_id)
    pattern = _NAME_PATTERNS.get(rtype)
    if pattern is not None and not pattern.match(config_resource_name(rtype, {"resourceId": rid})):
        raise InvalidEvent(f"{rule_name}: {rtype} {str(rid)[:64]!r} is not a name SageMaker has", event_id)
    # Config reports on its own account and region: a body naming others than the envelope's (which
    # EventBridge sets from the sender) is not Config's, and netguard acts only where the event came from.
    for key, envelope_value in (("awsAccountId", account), ("awsRegion", region)):
        if key in detail and detail[key] != envelope_value:
            raise InvalidEvent(f"detail.{key} {str(detail[key])[:32]!r} is not the event's own "
                               f"{envelope_value}: not acted on", event_id)
    name = config_resource_name(rtype, {"resourceId": rid})
    return event_id, rule_name, ResourceRef(rtype, name, account, region), rule.identifier


def compliance_change_pattern(policy: Policy) -> dict[str, Any]:
    """The EventBridge pattern of on_compliance_change: NON_COMPLIANT results on the mapped types (rule
    names are matched in code: Security Hub and conformance packs add prefixes and suffixes)."""
    return {
        "source": ["aws.config"],
        "detail-type": ["Config Rules Compliance Change"],
        "detail": {
            "messageType": ["ComplianceChangeNotification"],
            "resourceType": sorted({t for r in policy.config_rules for t in r.resource_types}),
            "newEvaluationResult": {"complianceType": [NON_COMPLIANT]},
        },
    }
