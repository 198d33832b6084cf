"""The deployable stack (`make package`) and the member-account template, as a deployment relies on them.

Each stage is packaged once per module the way `make package` does it: `tools/stack.py merge`, then
`chalice package --merge-template` with NETGUARD_STAGE set, on a copy of the project (the helpers and
the copy rules are tests/packaging/test_packaging.py's; like those tests, these need PyPI or pip's cache).
What only AWS can tell is not tested here: that CloudFormation creates the stack, that Config accepts
the rules, that a StackSet reaches the member accounts. Policies (key policies, trust policies, the
example SCP) are checked with a small evaluator of the IAM features they use (`_decide`), not by IAM.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_packaging import COPY_IGNORE, REGION, ROOT, STAGES, _functions, _stage_env, _template, _tool

from chalicelib.configrule import CONFIG_TYPES

sys.path.insert(0, str(ROOT / "tools"))

import stack

from chalicelib.policy import ConfigRule, load_policy
from chalicelib.settings import Settings

ACCOUNT = "123456789012"
MEMBER_ACCOUNTS = ["111111111111", "222222222222"]
# What the custom rule's handler evaluates (the types AWS Config records): the rule's scope must match.
CUSTOM_RULE_TYPES = set(CONFIG_TYPES)
QUEUES = {"RecheckQueue": ("recheck", "RecheckDeadLetterQueue"), "SweepQueue": ("sweep_worker", "SweepDeadLetterQueue")}
EVENTS_DLQ = "EventsDeadLetterQueue"  # failed asynchronous invocations (EventInvokeConfig OnFailure)
DEAD_LETTER_QUEUES = (*(dlq for _, dlq in QUEUES.values()), EVENTS_DLQ)
SCP = ROOT / "deploy" / "tag-guard-scp.yaml"
NETGUARD_TAG_KEYS = ("netguard:exempt", "netguard:exempt-until", "netguard:exempt-reason", "netguard:quarantined",
                     "netguard:created-by")
# kms: the ledger's signing key and the webhook secret's decryption stay central; the engine's DescribeKey
# (who manages an endpoint configuration's key, EP.3) is a read of the member account's own keys.
CENTRAL_ONLY = ("dynamodb:", "sns:", "ssm:", "secretsmanager:", "kms:Decrypt", "kms:GenerateMac", "xray:", "sqs:",
                "s3:", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "config:", "organizations:",
                "sts:")


def _package_stack(project: Path, stage: str, out: Path) -> str:
    """What `make package STAGE=<stage>` runs; returns the output of a failed step, else ''."""
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "PYTHONDONTWRITEBYTECODE": "1", "NETGUARD_STAGE": stage}
    merge = project / "build" / f"netguard-stack-{stage}.json"
    steps = [
        [sys.executable, "-B", str(project / "tools" / "stack.py"), "merge", "--stage", stage, "--out", str(merge)],
        [_tool("chalice"), "--project-dir", str(project), "package", "--stage", stage, "--merge-template", str(merge),
         str(out)],
    ]
    for step in steps:
        result = subprocess.run(step, cwd=project, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode:
            return f"{' '.join(step)}:\n{result.stdout}\n{result.stderr}"
    return ""


@pytest.fixture(scope="module")
def packaged_stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """stage -> directory of the deployment.zip and merged sam.json `make package` writes for it."""
    base = tmp_path_factory.mktemp("stack")
    projects = {}
    for stage in STAGES:  # one copy per stage: parallel runs would race on Chalice's cache in the project
        projects[stage] = base / f"project-{stage}"
        shutil.copytree(ROOT, projects[stage], symlinks=True, ignore=COPY_IGNORE)
    outs = {stage: base / f"out-{stage}" for stage in STAGES}
    with ThreadPoolExecutor(max_workers=len(STAGES)) as pool:
        failures = dict(zip(STAGES, pool.map(lambda s: _package_stack(projects[s], s, outs[s]), STAGES), strict=True))
    for stage, failure in failures.items():
        assert not failure, f"packaging {stage} failed: {failure}"
    return outs


@pytest.fixture(scope="module")
def stacks(packaged_stacks: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """stage -> the merged SAM template."""
    return {stage: _template(out) for stage, out in packaged_stacks.items()}


@pytest.fixture(scope="module")
def member() -> dict[str, Any]:
    return stack.load_template(stack.MEMBER)


# ----------------------------------------------------------------------------------------- helpers

def _resources(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == rtype}


def _sub(value: Any, stage: str) -> str:
    """A name the stack gives: a string, or a Fn::Sub of the stage and pseudo parameters."""
    if isinstance(value, str):
        return value
    assert isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str), value
    text = value["Fn::Sub"]
    for name, given in {"Stage": stage, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                        "AWS::Partition": "aws"}.items():
        text = text.replace("${" + name + "}", given)
    assert "${" not in text, text
    return text


def _evaluate(value: Any, refs: dict[str, Any], conditions: dict[str, bool]) -> Any:
    """The value CloudFormation gives `value`, for the intrinsics the stack's environment and policies
    use. refs: parameter and resource names (Ref), "Logical.Attribute" (Fn::GetAtt)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_evaluate(item, refs, conditions) for item in value]
    if len(value) != 1 or not (set(value) <= {"Ref", "Condition"} or next(iter(value)).startswith("Fn::")):
        return {k: _evaluate(v, refs, conditions) for k, v in value.items()}
    (key, arg), = value.items()
    if key == "Ref":
        return refs[arg]
    if key == "Fn::GetAtt":
        return refs[".".join(arg)]
    if key == "Fn::Sub":
        text = arg
        for name, given in refs.items():
            if isinstance(given, str):
                text = text.replace("${" + name + "}", given)
        assert "${" not in text, text
        return text
    if key == "Fn::Join":
        return arg[0].join(_evaluate(arg[1], refs, conditions))
    if key == "Fn::Split":
        return _evaluate(arg[1], refs, conditions).split(arg[0])
    if key == "Fn::If":
        return _evaluate(arg[1] if conditions[arg[0]] else arg[2], refs, conditions)
    raise AssertionError(f"unexpected intrinsic {key}")


def _role_logical_ids(template: dict[str, Any]) -> list[str]:
    """The roles Chalice made for the functions (one per function: autogen_policy is off), in handler order."""
    return [props["Role"]["Fn::GetAtt"][0] for _, props in sorted(_functions(template).items())]


def _role_arn(logical: str) -> str:
    """The ARN CloudFormation would give one of those roles (stack netguard-<stage>)."""
    return f"arn:aws:iam::{ACCOUNT}:role/netguard-prod-{logical}-AbCdEf123456"


def _logical_id(template: dict[str, Any], handler: str) -> str:
    return next(n for n, r in _resources(template, "AWS::Serverless::Function").items()
                if r["Properties"]["Handler"] == f"app.{handler}")


# A small evaluator of the IAM features the stack's key and trust policies and the example SCP use:
# Allow/Deny, Action and NotAction with wildcards, Resource "*" or NotResource, AWS principals (an
# account root stands for every principal of the account, "*" for anyone), and the condition operators
# below with IAM's rules for several values (OR; negated operators: NOR), for a key missing from the
# request (false; negated operators: true; ...IfExists: true) and for ForAnyValue (false without the key).
def _wild(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition_holds(operator: str, key: str, expected: Any, context: dict[str, Any]) -> bool:
    expected = [str(v) for v in _as_list(expected)]
    if operator == "Null":
        assert expected in (["true"], ["false"]), expected
        return (key not in context) == (expected == ["true"])
    values = context.get(key)
    if operator.endswith("IfExists"):
        return values is None or _condition_holds(operator.removesuffix("IfExists"), key, expected, context)
    if operator.startswith("ForAnyValue:"):
        operator = operator.removeprefix("ForAnyValue:")
        return values is not None and any(_condition_holds(operator, key, expected, {key: v}) for v in values)
    negated = "Not" in operator
    if values is None:
        return negated
    match = {"StringEquals": lambda p, v: p == v, "StringNotEquals": lambda p, v: p == v,
             "StringLike": _wild, "StringNotLike": _wild, "ArnEquals": _wild, "ArnNotEquals": _wild,
             "ArnLike": _wild, "ArnNotLike": _wild}[operator]
    hit = any(match(p, values) for p in expected)
    return not hit if negated else hit


def _statement_applies(st: dict[str, Any], action: str, context: dict[str, Any], principal: str | None) -> bool:
    if "Action" in st and not any(_wild(a.lower(), action.lower()) for a in _as_list(st["Action"])):
        return False
    if "NotAction" in st and any(_wild(a.lower(), action.lower()) for a in _as_list(st["NotAction"])):
        return False
    assert st.get("Resource", "*") == "*" or "Resource" not in st, st
    if principal is not None and "Principal" in st:
        allowed = _as_list(st["Principal"]) if st["Principal"] == "*" else _as_list(st["Principal"].get("AWS", []))
        account = principal.split(":")[4]
        if not any(p == "*" or p == principal or p == f"arn:aws:iam::{account}:root" for p in allowed):
            return False
    return all(_condition_holds(op, key, expected, context)
               for op, block in st.get("Condition", {}).items() for key, expected in block.items())


def _decide(statements: list[dict[str, Any]], action: str, context: dict[str, Any],
            principal: str | None = None) -> str:
    """"deny", "allow" or "implicit deny" of a request (principal: for resource policies)."""
    applying = [st["Effect"] for st in statements if _statement_applies(st, action, context, principal)]
    return "deny" if "Deny" in applying else "allow" if "Allow" in applying else "implicit deny"


def _names(template: dict[str, Any], stage: str) -> dict[str, str]:
    res = template["Resources"]
    return {"table": _sub(res["LedgerTable"]["Properties"]["TableName"], stage),
            "topic": _sub(res["AlertTopic"]["Properties"]["TopicName"], stage),
            "bucket": _sub(res["ReportBucket"]["Properties"]["BucketName"], stage),
            **{logical: _sub(res[logical]["Properties"]["QueueName"], stage)
               for logical in (*QUEUES, *DEAD_LETTER_QUEUES)}}


def _arns(names: dict[str, str]) -> dict[str, str]:
    arns = {"table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{names['table']}",
            "topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{names['topic']}",
            "bucket": f"arn:aws:s3:::{names['bucket']}"}
    arns.update({k: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{v}" for k, v in names.items() if k.endswith("Queue")})
    return arns


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement grants `action` on `resource` (IAM's * and ? wildcards; conditions ignored)."""
    def match(pattern: str, value: str) -> bool:
        return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))

    return any(st.get("Effect") == "Allow"
               and any(match(a.lower(), action.lower()) for a in _as_list(st.get("Action", [])))
               and any(match(r, resource) for r in _as_list(st.get("Resource", [])))
               for st in _as_list(document["Statement"]))


def _role_documents(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """handler -> the policy document of its role, as Chalice embedded it from policy-<stage>.json."""
    out = {}
    for name, props in _functions(template).items():
        role = template["Resources"][props["Role"]["Fn::GetAtt"][0]]
        (policy,) = role["Properties"]["Policies"]
        out[name] = policy["PolicyDocument"]
    return out


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _cfn_lint(path: str) -> None:
    # No rule is ignored: exit status 0 means no error, warning or informational finding.
    result = subprocess.run([_tool("cfn-lint"), path], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"cfn-lint ({result.returncode}):\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------------------- the templates

@pytest.mark.parametrize("stage", STAGES)
def test_merged_template_passes_cfn_lint(packaged_stacks: dict[str, Path], stage: str) -> None:
    _cfn_lint(str(packaged_stacks[stage] / "sam.json"))


def test_member_template_passes_cfn_lint() -> None:
    _cfn_lint(str(stack.MEMBER))


def test_generated_sections_are_current() -> None:
    assert stack.stale_sections() == [], "run tools/stack.py write (make templates)"


@pytest.mark.parametrize("stage", STAGES)
def test_merge_keeps_every_intrinsic_whole_and_pins_the_stage(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    """A mapping merged into one of Chalice's intrinsics would leave e.g. {"Fn::Sub": ..., "Foo": ...}."""
    for node in _walk(stacks[stage]["Resources"]):
        if isinstance(node, dict) and any(k == "Ref" or k.startswith("Fn::") for k in node):
            assert len(node) == 1, f"intrinsic with extra keys: {node}"
    for name, resource in stacks[stage]["Resources"].items():
        assert "Type" in resource, f"{name}: merged onto no resource of Chalice's (renamed handler?)"
    parameter = stacks[stage]["Parameters"]["Stage"]
    assert parameter["Default"] == stage and parameter["AllowedValues"] == [stage]


def test_merge_refuses_a_stale_template(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "stale_sections", lambda: ["deploy/netguard-stack.yaml: managed-config-rules"])
    with pytest.raises(stack.StackError, match="tools/stack.py write"):
        stack.merge_template("dev")
    with pytest.raises(stack.StackError, match="stage"):
        stack.merge_template("Prod stage")


# ------------------------------------------------------------------------------- the resources

@pytest.mark.parametrize("stage", STAGES)
def test_ledger_table(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    table = stacks[stage]["Resources"]["LedgerTable"]
    props = table["Properties"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert _sub(props["TableName"], stage) == f"netguard-ledger-{stage}"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    attributes = {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]}
    assert attributes == {("pk", "S"), ("sk", "S")}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


@pytest.mark.parametrize("stage", STAGES)
def test_alert_topic_is_encrypted_and_tls_only_and_takes_the_alarms(stacks: dict[str, dict[str, Any]],
                                                                     stage: str) -> None:
    """CloudWatch alarms cannot publish to a topic encrypted with alias/aws/sns: the topic has its own
    key, whose policy lets cloudwatch.amazonaws.com use it, and the topic policy lets the stack's
    alarms (and only this account's) publish."""
    template = stacks[stage]
    res = template["Resources"]
    topic = res["AlertTopic"]["Properties"]
    assert _sub(topic["TopicName"], stage) == f"netguard-alerts-{stage}"
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlertTopicKey", "Arn"]}
    key = res["AlertTopicKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    refs = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "Stage": stage}
    key_policy = _evaluate(key["Properties"]["KeyPolicy"], refs, {})["Statement"]
    cloudwatch = [st for st in key_policy if st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1 and cloudwatch[0]["Effect"] == "Allow"
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(_as_list(cloudwatch[0]["Action"]))
    assert cloudwatch[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    statements = res["AlertTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [st for st in statements if st["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (publish,) = [st for st in statements if st["Effect"] == "Allow"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and publish["Action"] == "sns:Publish"
    condition = _evaluate(publish["Condition"], refs, {})
    assert condition["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    pattern = condition["ArnLike"]["aws:SourceArn"]
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    assert alarms
    for name, alarm in alarms.items():
        arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{_sub(alarm['Properties']['AlarmName'], stage)}"
        assert _wild(pattern, arn), f"{name}: the topic policy does not let {arn} publish"
    other = next(s for s in STAGES if s != stage) if len(STAGES) > 1 else "other"
    assert not _wild(pattern, f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:netguard-{other}-errors-sweep")


@pytest.mark.parametrize("stage", STAGES)
def test_queues_have_dead_letter_queues(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    res = stacks[stage]["Resources"]
    functions = _functions(stacks[stage])
    for logical, (consumer, dlq) in QUEUES.items():
        props = res[logical]["Properties"]
        base = logical.removesuffix("Queue").lower()
        assert _sub(props["QueueName"], stage) == f"netguard-{base}-{stage}"
        assert _sub(res[dlq]["Properties"]["QueueName"], stage) == f"netguard-{base}-dlq-{stage}"
        assert props["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 5}
        assert res[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert props["SqsManagedSseEnabled"] is True and res[dlq]["Properties"]["SqsManagedSseEnabled"] is True
        timeout = functions[consumer]["Timeout"]
        assert props["VisibilityTimeout"] >= 6 * timeout, f"{logical}: 6 x {consumer}'s {timeout} s"
    assert functions["sweep_worker"]["Timeout"] == 900 and functions["sweep_worker"]["MemorySize"] >= 512
    assert functions["config_rule"]["Timeout"] == 300
    events = res[EVENTS_DLQ]["Properties"]
    assert _sub(events["QueueName"], stage) == f"netguard-events-dlq-{stage}"
    assert events["MessageRetentionPeriod"] == 14 * 24 * 3600 and events["SqsManagedSseEnabled"] is True
    # every queue of the stack is TLS-only
    policy = res["QueuesTlsOnlyPolicy"]["Properties"]
    queues = set(_resources(stacks[stage], "AWS::SQS::Queue"))
    assert {q["Ref"] for q in policy["Queues"]} == queues
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {r["Fn::GetAtt"][0] for r in deny["Resource"]} == queues


@pytest.mark.parametrize("stage", STAGES)
def test_sqs_event_sources_read_the_stack_queues_and_report_batch_item_failures(
        stacks: dict[str, dict[str, Any]], stage: str) -> None:
    template = stacks[stage]
    names = _names(template, stage)
    queue_of = {consumer: logical for logical, (consumer, _) in QUEUES.items()}
    functions = _functions(template)
    logical_ids = {r["Properties"]["Handler"].removeprefix("app."): name
                   for name, r in _resources(template, "AWS::Serverless::Function").items()}
    consumers = {name for name, props in functions.items()
                 if any(e["Type"] == "SQS" for e in props.get("Events", {}).values())}
    assert consumers == set(queue_of)
    for name in consumers:
        (event,) = functions[name]["Events"].values()
        queue = queue_of[name]
        # Chalice names the queue (app.py, from NETGUARD_STAGE): it must be the one the stack creates.
        assert _sub(event["Properties"]["Queue"], stage) == _arns(names)[queue]
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # The mapping refers to its function; the function must wait for the queue.
        resource = template["Resources"][logical_ids[name]]
        assert queue in _as_list(resource.get("DependsOn", [])) or {"Ref": queue} in _walk(resource["Properties"])


@pytest.mark.parametrize("stage", STAGES)
def test_report_bucket(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    res = stacks[stage]["Resources"]
    bucket = res["ReportBucket"]
    props = bucket["Properties"]
    assert _sub(props["BucketName"], stage) == f"netguard-reports-{ACCOUNT}-{stage}"
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # Versioned, and what versioning keeps expires too: overwritten or deleted reports after
    # ReportRetentionDays, and the delete markers left once their versions are gone.
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert set(rules) == {"expire-reports", "expire-noncurrent-versions"}
    rule = rules["expire-reports"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == {"Ref": "ReportRetentionDays"}
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["Status"] == "Enabled" and noncurrent["ExpiredObjectDeleteMarker"] is True
    assert noncurrent["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "ReportRetentionDays"}}
    (deny,) = res["ReportBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"Fn::Sub": "${ReportBucket.Arn}/*"} in deny["Resource"]


@pytest.mark.parametrize("stage", STAGES)
def test_sweep_schedule_is_a_parameter(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    (event,) = _functions(stacks[stage])["sweep"]["Events"].values()
    assert event["Type"] == "Schedule" and event["Properties"]["Schedule"] == {"Ref": "SweepSchedule"}
    assert stacks[stage]["Parameters"]["SweepSchedule"]["Default"] == "rate(12 hours)"


@pytest.mark.parametrize("stage", STAGES)
def test_member_accounts_may_put_events_on_the_default_bus(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    res = stacks[stage]["Resources"]
    org = res["OrganizationEventBusPolicy"]
    assert org["Condition"] == "HasOrganization" and org["Properties"]["EventBusName"] == "default"
    statement = org["Properties"]["Statement"]
    assert statement["Action"] == "events:PutEvents" and statement["Principal"] == "*"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
    accounts = res["MemberAccountsEventBusPolicy"]
    assert accounts["Condition"] == "UsesAccountList"
    assert accounts["Properties"]["Statement"]["Principal"] == {"AWS": {"Ref": "MemberAccounts"}}
    assert org["Properties"]["StatementId"] != accounts["Properties"]["StatementId"]


# ------------------------------------------------------------------------------- AWS Config

@pytest.mark.parametrize("stage", STAGES)
def test_custom_config_rule_invokes_the_config_rule_function(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    res = stacks[stage]["Resources"]
    logical = next(n for n, r in _resources(stacks[stage], "AWS::Serverless::Function").items()
                   if r["Properties"]["Handler"] == "app.config_rule")
    rule = res["CustomConfigRule"]
    props = rule["Properties"]
    assert rule["Condition"] == "DeployConfigRule"
    assert _sub(props["ConfigRuleName"], stage) == f"netguard-sagemaker-network-{stage}"
    assert props["Source"]["Owner"] == "CUSTOM_LAMBDA"
    assert props["Source"]["SourceIdentifier"] == {"Fn::GetAtt": [logical, "Arn"]}
    details = {d["MessageType"]: d for d in props["Source"]["SourceDetails"]}
    assert set(details) == {"ConfigurationItemChangeNotification", "OversizedConfigurationItemChangeNotification",
                            "ScheduledNotification"}
    assert all(d["EventSource"] == "aws.config" for d in details.values())
    assert details["ScheduledNotification"]["MaximumExecutionFrequency"] == {"Ref": "ConfigRuleFrequency"}
    assert stacks[stage]["Parameters"]["ConfigRuleFrequency"]["Default"] == "TwentyFour_Hours"
    assert set(props["Scope"]["ComplianceResourceTypes"]) == CUSTOM_RULE_TYPES
    permission = res[rule["DependsOn"]]
    assert permission["Type"] == "AWS::Lambda::Permission" and permission["Condition"] == "DeployConfigRule"
    assert permission["Properties"] == {"Action": "lambda:InvokeFunction",
                                        "FunctionName": {"Fn::GetAtt": [logical, "Arn"]},
                                        "Principal": "config.amazonaws.com", "SourceAccount": {"Ref": "AWS::AccountId"}}


@pytest.mark.parametrize("stage", STAGES)
def test_managed_config_rules_are_the_toml(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    rules = load_policy().config_rules
    deployed = {_sub(r["Properties"]["ConfigRuleName"], stage): r
                for r in _resources(stacks[stage], "AWS::Config::ConfigRule").values()
                if r["Properties"]["Source"]["Owner"] == "AWS"}
    assert set(deployed) == {f"netguard-{r.name}-{stage}" for r in rules if r.deploy}
    for rule in rules:
        if not rule.deploy:
            continue
        resource = deployed[f"netguard-{rule.name}-{stage}"]
        props = resource["Properties"]
        assert resource["Condition"] == "DeployManagedConfigRules"
        assert props["Source"] == {"Owner": "AWS", "SourceIdentifier": rule.identifier}
        assert props.get("InputParameters", {}) == dict(rule.parameters)
        if rule.identifier in stack.PERIODIC_RULES:
            assert props["MaximumExecutionFrequency"] == {"Ref": "ConfigRuleFrequency"} and "Scope" not in props
        else:
            assert props["Scope"] == {"ComplianceResourceTypes": list(rule.resource_types)}
            assert "MaximumExecutionFrequency" not in props
        # on_compliance_change recognises the deployed rule by its name
        assert load_policy().config_rule_for(f"netguard-{rule.name}-{stage}") == rule
    flow_logs = deployed[f"netguard-vpc-flow-logs-enabled-{stage}"]["Properties"]
    assert flow_logs["InputParameters"] == {"trafficType": "ALL"}


def test_generated_rules_follow_the_toml_and_refuse_unknown_rules() -> None:
    rule = ConfigRule("VPC_FLOW_LOGS_ENABLED", "vpc-flow-logs-enabled", ("AWS::EC2::VPC",), ("VPC.3",), True,
                      {"trafficType": "REJECT"}, "config-rules.toml")
    (generated,) = stack.managed_rules([rule]).values()
    assert generated["Properties"]["InputParameters"] == {"trafficType": "REJECT"}
    assert stack.managed_rules([replace(rule, deploy=False)]) == {}
    with pytest.raises(stack.StackError, match="PERIODIC_RULES"):
        stack.managed_rules([replace(rule, identifier="SOME_NEW_RULE")])


# ------------------------------------------------------------------------------- functions and IAM

@pytest.mark.parametrize("stage", STAGES)
def test_functions_use_the_stack_resources(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    template = stacks[stage]
    names = _names(template, stage)
    by_ref = {"NETGUARD_STAGE": "Stage", "NETGUARD_LEDGER_TABLE": "LedgerTable",
              "NETGUARD_ALERT_TOPIC_ARN": "AlertTopic",
              "NETGUARD_RECHECK_QUEUE_URL": "RecheckQueue", "NETGUARD_SWEEP_QUEUE_URL": "SweepQueue",
              "NETGUARD_REPORT_BUCKET": "ReportBucket", "NETGUARD_HOME_ACCOUNT": "AWS::AccountId",
              "NETGUARD_MEMBER_ROLE_NAME": "MemberRoleName", "NETGUARD_MEMBER_EXTERNAL_ID": "MemberExternalId"}
    refs = {"Stage": stage, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "LedgerTable": names["table"],
            "AlertTopic": _arns(names)["topic"], "ReportBucket": names["bucket"], "MemberRoleName": "netguard-member",
            "MemberExternalId": "ext-id", "SlackWebhookParameter": "", "OrganizationId": "o-abcdefghij",
            "MemberAccounts": MEMBER_ACCOUNTS, "Regions": ["us-east-1", "eu-west-1"],
            **{q: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{names[q]}" for q in QUEUES}}
    roles = _role_logical_ids(template)
    assert len(set(roles)) == len(roles) == len(_functions(template)), "one role per function"
    refs.update({f"{role}.Arn": _role_arn(role) for role in roles})
    key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0123abcd-0000-0000-0000-000000000000"
    refs["LedgerSigningKey.Arn"] = key_arn
    stage_env = _stage_env(stage)
    for name, props in _functions(template).items():
        variables = props["Environment"]["Variables"]
        for var, logical in by_ref.items():
            assert variables[var] == {"Ref": logical}, f"{name}: {var}"
        # The roles every function runs as (all of them: a change any of them makes is netguard's own),
        # and the ledger's signing key.
        separator, own = variables["NETGUARD_OWN_ROLE_ARNS"]["Fn::Join"]
        assert separator == "," and sorted(own, key=str) == sorted(
            ({"Fn::GetAtt": [role, "Arn"]} for role in roles), key=str), f"{name}: NETGUARD_OWN_ROLE_ARNS"
        assert variables["NETGUARD_LEDGER_KEY_ID"] == {"Fn::GetAtt": ["LedgerSigningKey", "Arn"]}, name
        for var, value in stage_env.items():  # the stage's own settings stay
            if var not in by_ref and var != "NETGUARD_SLACK_WEBHOOK_PARAM":
                assert variables[var] == value, f"{name}: {var}"
        # The names are the ones the code reads: evaluate the environment as CloudFormation would.
        for organization in (True, False):
            conditions = {"HasOrganization": organization, "HasRegions": True, "HasSlackWebhookParameter": False}
            env = {k: _evaluate(v, refs, conditions) for k, v in variables.items()}
            settings = Settings.from_env(env)
            assert settings.stage == stage and settings.home_account == ACCOUNT
            assert settings.ledger_table == names["table"] and settings.alert_topic_arn == _arns(names)["topic"]
            assert settings.recheck_queue_url == refs["RecheckQueue"] and settings.sweep_queue_url == refs["SweepQueue"]
            assert settings.report_bucket == names["bucket"] and settings.regions == ("us-east-1", "eu-west-1")
            assert settings.member_role_name == "netguard-member" and settings.member_external_id == "ext-id"
            assert settings.slack_webhook_param == stage_env["NETGUARD_SLACK_WEBHOOK_PARAM"]
            assert settings.accounts == (("organization",) if organization else tuple(MEMBER_ACCOUNTS))
            assert sorted(settings.own_role_arns) == sorted(_role_arn(role) for role in roles)
            assert env["NETGUARD_LEDGER_KEY_ID"] == key_arn
    for logical, rtype in (("LedgerTable", "AWS::DynamoDB::Table"), ("AlertTopic", "AWS::SNS::Topic"),
                           ("RecheckQueue", "AWS::SQS::Queue"), ("SweepQueue", "AWS::SQS::Queue"),
                           ("ReportBucket", "AWS::S3::Bucket")):
        assert template["Resources"][logical]["Type"] == rtype


@pytest.mark.parametrize("stage", STAGES)
def test_role_policy_names_the_resources_the_stack_creates(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    """.chalice/policy-<stage>.json is hand-written: the names it grants must be the stack's, both ways."""
    arns = _arns(_names(stacks[stage], stage))
    known = list(arns.values()) + [arns["table"] + "/index/any", arns["bucket"] + "/netguard/sweeps/report.json"]
    for name, document in _role_documents(stacks[stage]).items():
        for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"):
            assert _allows(document, f"dynamodb:{op}", arns["table"]), f"{name}: dynamodb:{op} on the ledger"
        assert _allows(document, "sns:Publish", arns["topic"]), f"{name}: sns:Publish on the alert topic"
        for st in _as_list(document["Statement"]):
            for resource in _as_list(st.get("Resource", [])):
                if resource.startswith(("arn:aws:dynamodb:", "arn:aws:sns:", "arn:aws:sqs:", "arn:aws:s3:")) \
                        and "netguard" in resource:
                    assert any(fnmatch.fnmatchcase(arn, resource) for arn in known), \
                        f"{name} {st.get('Sid')}: {resource} is none of the stack's resources {sorted(arns.values())}"


@pytest.mark.parametrize("stage", STAGES)
def test_role_policy_lets_the_functions_use_the_stack(stacks: dict[str, dict[str, Any]], member: dict[str, Any],
                                                     stage: str) -> None:
    """What the stack wires up only works if the hand-written policy allows it: the SQS event source
    mappings are only created when the role may receive from the queue; the member role is assumed
    by the name both templates default to."""
    arns = _arns(_names(stacks[stage], stage))
    role_name = stacks[stage]["Parameters"]["MemberRoleName"]["Default"]
    assert member["Parameters"]["RoleName"]["Default"] == role_name
    for name, document in _role_documents(stacks[stage]).items():
        for queue in QUEUES:
            for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "SendMessage"):
                assert _allows(document, f"sqs:{action}", arns[queue]), f"{name}: sqs:{action} on {queue}"
        assert _allows(document, "s3:PutObject", arns["bucket"] + "/netguard/sweeps/report.json"), name
        assert _allows(document, "sts:AssumeRole", f"arn:aws:iam::{MEMBER_ACCOUNTS[0]}:role/{role_name}"), name
        assert _allows(document, "organizations:ListAccounts", "*"), name
        assert _allows(document, "config:PutEvaluations", "*"), name


# ------------------------------------------------------------------------------- member accounts

CENTRAL = "999999999999"
CENTRAL_ROLES = [f"arn:aws:iam::{CENTRAL}:role/netguard-prod-OnApiCallRole-AbCdEf123456",
                 f"arn:aws:iam::{CENTRAL}:role/netguard-prod-SweepWorkerRole-AbCdEf123456"]


def _member_trust(member: dict[str, Any], organization: str) -> list[dict[str, Any]]:
    refs = {"AWS::Partition": "aws", "AWS::AccountId": MEMBER_ACCOUNTS[0], "CentralAccountId": CENTRAL,
            "CentralRoleArns": CENTRAL_ROLES, "ExternalId": "ext-id", "OrganizationId": organization}
    document = member["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]
    return _evaluate(document, refs, {"HasOrganization": bool(organization)})["Statement"]


def test_member_role_trusts_only_the_central_function_roles_with_the_external_id(member: dict[str, Any]) -> None:
    role = member["Resources"]["MemberRole"]
    assert role["Properties"]["RoleName"] == {"Ref": "RoleName"}
    assert member["Parameters"]["RoleName"]["Default"] == "netguard-member"
    assert member["Parameters"]["ExternalId"]["NoEcho"] is True and "Default" not in member["Parameters"]["ExternalId"]
    # CentralRoleArns: required, a list of exact role ARNs (no wildcard gets through the pattern)
    central_roles = member["Parameters"]["CentralRoleArns"]
    assert central_roles["Type"] == "CommaDelimitedList" and "Default" not in central_roles
    pattern = re.compile(central_roles["AllowedPattern"])
    assert all(pattern.fullmatch(arn) for arn in CENTRAL_ROLES)
    for bad in (f"arn:aws:iam::{CENTRAL}:role/*", f"arn:aws:iam::{CENTRAL}:root", "arn:aws:iam::*:role/netguard-x",
                f"arn:aws:iam::{CENTRAL}:user/admin", f"arn:aws:sts::{CENTRAL}:assumed-role/r/s"):
        assert not pattern.fullmatch(bad), bad
    assert member["Parameters"]["OrganizationId"]["Default"] == ""
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRole"
    # The central account's root (a role ARN as Principal must exist when the policy is written);
    # which of its principals is a condition.
    assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert trust["Condition"]["ArnEquals"] == {"aws:PrincipalArn": {"Ref": "CentralRoleArns"}}

    def decide(organization: str, principal: str, external_id: str | None = "ext-id",
               org_of_principal: str | None = "o-abcdefghij") -> str:
        context = {"aws:PrincipalArn": principal}
        if external_id is not None:
            context["sts:ExternalId"] = external_id
        if org_of_principal is not None:
            context["aws:PrincipalOrgID"] = org_of_principal
        return _decide(_member_trust(member, organization), "sts:AssumeRole", context, principal)

    for organization in ("", "o-abcdefghij"):
        for arn in CENTRAL_ROLES:
            assert decide(organization, arn) == "allow", (organization, arn)
        # another role of the central account, a central role's namesake elsewhere, no or a wrong external id
        assert decide(organization, f"arn:aws:iam::{CENTRAL}:role/Admin") == "implicit deny"
        assert decide(organization, CENTRAL_ROLES[0].replace(CENTRAL, "888888888888")) == "implicit deny"
        assert decide(organization, CENTRAL_ROLES[0], external_id=None) == "implicit deny"
        assert decide(organization, CENTRAL_ROLES[0], external_id="guess") == "implicit deny"
    # With OrganizationId, also only from inside the organization; without it, the organization is not asked.
    assert decide("o-abcdefghij", CENTRAL_ROLES[0], org_of_principal="o-otherorgxyz") == "implicit deny"
    assert decide("o-abcdefghij", CENTRAL_ROLES[0], org_of_principal=None) == "implicit deny"
    assert decide("", CENTRAL_ROLES[0], org_of_principal=None) == "allow"
    roles = _resources(member, "AWS::IAM::Role")
    assert set(roles) == {"MemberRole", "ForwarderRole"}
    (forwarder,) = roles["ForwarderRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert forwarder["Principal"] == {"Service": "events.amazonaws.com"}


@pytest.mark.parametrize("stage", STAGES)
def test_member_permissions_are_the_engine_subset_of_the_central_policy(
        stacks: dict[str, dict[str, Any]], member: dict[str, Any], stage: str) -> None:
    (central,) = {json.dumps(d, sort_keys=True) for d in _role_documents(stacks[stage]).values()}
    central_statements = json.loads(central)["Statement"]
    policies = _resources(member, "AWS::IAM::Policy")
    assert [p["Properties"]["Roles"] for p in policies.values()] == [[{"Ref": "MemberRole"}]]
    (statements,) = [p["Properties"]["PolicyDocument"]["Statement"] for p in policies.values()]

    # securityhub: a finding is imported by the account it is about (the default product ARN), so through the member
    # role (notify/securityhub.py)
    member_prefixes = ("sagemaker:", "ec2:", "tag:", "route53:", "elasticfilesystem:", "securityhub:")

    def engine(st: dict[str, Any]) -> bool:
        return all(a.startswith(member_prefixes) or a in ("iam:PassRole", "logs:CreateLogDelivery", "kms:DescribeKey")
                   for a in _as_list(st["Action"]))

    assert statements == [st for st in central_statements if engine(st)]
    granted = {a for st in statements for a in _as_list(st["Action"])}
    central_engine = {a for st in central_statements for a in _as_list(st["Action"])
                      if a.startswith(member_prefixes)}
    # what the engine reads in member accounts (Route 53's private zones of a VPC, item 2 of issue 11)
    assert "route53:ListHostedZonesByVPC" in granted
    assert central_engine <= granted
    assert not [a for a in granted if a.startswith(CENTRAL_ONLY)]


def test_member_statements_refuse_what_is_not_classified() -> None:
    policy = {"Statement": [{"Sid": "New", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]}
    with pytest.raises(stack.StackError, match="classify"):
        stack.member_statements(policy)
    mixed = {"Statement": [{"Sid": "Mixed", "Effect": "Allow", "Action": ["ec2:DescribeVpcs", "sns:Publish"],
                            "Resource": "*"}]}
    with pytest.raises(stack.StackError, match="split"):
        stack.member_statements(mixed)


@pytest.mark.parametrize("stage", STAGES)
def test_member_forwarding_rules_match_the_central_functions(
        stacks: dict[str, dict[str, Any]], member: dict[str, Any], stage: str) -> None:
    central = {name: event["Properties"]["Pattern"] for name, props in _functions(stacks[stage]).items()
               for event in props.get("Events", {}).values() if event["Type"] == "CloudWatchEvent"}
    rules = _resources(member, "AWS::Events::Rule")
    assert set(rules) == {stack.forward_rule_id(name) for name in central}
    bus = ("arn:${AWS::Partition}:events:${Region}:${CentralAccountId}:event-bus/default",
           {"Region": {"Fn::If": ["SameRegion", {"Ref": "AWS::Region"}, {"Ref": "CentralRegion"}]}})
    for name, pattern in central.items():
        rule = rules[stack.forward_rule_id(name)]
        props = rule["Properties"]
        assert json.dumps(props["EventPattern"], sort_keys=True) == json.dumps(pattern, sort_keys=True), name
        assert rule["Condition"] == "ForwardEvents" and props["EventBusName"] == "default"
        (target,) = props["Targets"]
        assert target["Arn"] == {"Fn::Sub": list(bus)}
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    (policy,) = member["Resources"]["ForwarderRole"]["Properties"]["Policies"]
    (put,) = policy["PolicyDocument"]["Statement"]
    assert put["Action"] == "events:PutEvents" and put["Resource"] == {"Fn::Sub": list(bus)}
    # the central account's own region does not forward to itself
    assert member["Conditions"]["ForwardEvents"] == {"Fn::Not": [{"Condition": "IsCentralBus"}]}


# ------------------------------------------------------------------------------- deployment safety

def _async_handlers(template: dict[str, Any]) -> set[str]:
    """Handlers Lambda invokes asynchronously: EventBridge rules and schedules, and AWS Config's custom rule."""
    found = {name for name, props in _functions(template).items()
             if any(e["Type"] in ("CloudWatchEvent", "Schedule") for e in props.get("Events", {}).values())}
    source = template["Resources"]["CustomConfigRule"]["Properties"]["Source"]["SourceIdentifier"]
    config = next(name for name, props in _functions(template).items()
                  if _logical_id(template, name) == source["Fn::GetAtt"][0])
    return found | {config}


@pytest.mark.parametrize("stage", STAGES)
def test_failed_asynchronous_invocations_go_to_the_events_dead_letter_queue(
        stacks: dict[str, dict[str, Any]], stage: str) -> None:
    template = stacks[stage]
    handlers = _async_handlers(template)
    assert handlers == {"on_api_call", "on_state_change", "on_compliance_change", "sweep", "config_rule"}
    configs = _resources(template, "AWS::Lambda::EventInvokeConfig")
    by_function = {c["Properties"]["FunctionName"]["Ref"]: c["Properties"] for c in configs.values()}
    assert len(by_function) == len(configs), "one configuration per function"
    assert set(by_function) == {_logical_id(template, h) for h in handlers}, "the SQS consumers have their own DLQs"
    for logical, props in by_function.items():
        assert props["Qualifier"] == "$LATEST", logical  # Chalice publishes no version or alias
        assert props["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [EVENTS_DLQ, "Arn"]}}}
        assert props["MaximumRetryAttempts"] == 2
        assert props["MaximumEventAgeInSeconds"] == {"Ref": "FailedEventRetentionSeconds"}
    retention = template["Parameters"]["FailedEventRetentionSeconds"]
    assert retention["Default"] == retention["MaxValue"] == 21600 and retention["MinValue"] >= 60
    # Lambda sends to the destination with the function's role: the policy must allow it.
    dlq = _arns(_names(template, stage))[EVENTS_DLQ]
    documents = _role_documents(template)
    for handler in handlers:
        assert _allows(documents[handler], "sqs:SendMessage", dlq), handler


@pytest.mark.parametrize("stage", STAGES)
def test_what_is_evidence_is_kept_when_the_stack_goes(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    res = stacks[stage]["Resources"]
    log_groups = _resources(stacks[stage], "AWS::Logs::LogGroup")
    # Chalice's log group of every function (log_retention_in_days is set in every stage)
    assert {f"{_logical_id(stacks[stage], h)}LogGroup" for h in _functions(stacks[stage])} == set(log_groups)
    kept = [*log_groups, *DEAD_LETTER_QUEUES, "LedgerTable", "ReportBucket", "LedgerSigningKey"]
    for logical in kept:
        assert res[logical].get("DeletionPolicy") == res[logical].get("UpdateReplacePolicy") == "Retain", logical
    # every queue some other queue or function sends its failures to is among them
    targets = {r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
               for r in _resources(stacks[stage], "AWS::SQS::Queue").values() if "RedrivePolicy" in r["Properties"]}
    targets |= {c["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
                for c in _resources(stacks[stage], "AWS::Lambda::EventInvokeConfig").values()}
    assert targets == set(DEAD_LETTER_QUEUES)


@pytest.mark.parametrize("stage", STAGES)
def test_reserved_concurrency_bounds_the_fan_out(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    """sweep_worker (one account-region per invocation) and recheck have reserved concurrency, and
    their SQS event sources never invoke them beyond it (a throttled message counts as a receive and
    would reach the dead-letter queue)."""
    functions = _functions(stacks[stage])
    reserved = {name: props["ReservedConcurrentExecutions"] for name, props in functions.items()
                if "ReservedConcurrentExecutions" in props}
    assert set(reserved) == {"sweep_worker", "recheck"}
    assert 2 <= reserved["sweep_worker"] <= 50 and 2 <= reserved["recheck"] <= 20
    # the account keeps its Lambda concurrency for the event handlers (1,000 by default; 100 unreserved minimum)
    assert sum(reserved.values()) <= 100
    for name in reserved:
        (event,) = functions[name]["Events"].values()
        maximum = event["Properties"]["ScalingConfig"]["MaximumConcurrency"]
        assert 2 <= maximum <= reserved[name], name


@pytest.mark.parametrize("stage", STAGES)
def test_alarms_notify_the_alert_topic(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    template = stacks[stage]
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlertTopic"}], name
        assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0, name
        assert props["EvaluationPeriods"] == 1 and props["TreatMissingData"] == "notBreaching", name
        assert _sub(props["AlarmName"], stage).startswith(f"netguard-{stage}-"), name
    names = [_sub(a["Properties"]["AlarmName"], stage) for a in alarms.values()]
    assert len(set(names)) == len(names)

    def metric(props: dict[str, Any]) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        dims = tuple(sorted((d["Name"], json.dumps(d["Value"], sort_keys=True)) for d in props.get("Dimensions", [])))
        return props["Namespace"], props["MetricName"], dims

    watched = {metric(a["Properties"]): a["Properties"] for a in alarms.values()}
    # errors of every function
    for handler in _functions(template):
        key = ("AWS/Lambda", "Errors", (("FunctionName", json.dumps({"Ref": _logical_id(template, handler)})),))
        assert key in watched and watched[key]["Statistic"] == "Sum", f"no Errors alarm for {handler}"
    # depth of every dead-letter queue
    for dlq in DEAD_LETTER_QUEUES:
        key = ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
               (("QueueName", json.dumps({"Fn::GetAtt": [dlq, "QueueName"]})),))
        assert key in watched and watched[key]["Statistic"] == "Maximum", f"no depth alarm for {dlq}"
    assert len(alarms) == len(_functions(template)) + len(DEAD_LETTER_QUEUES) + 1  # + undelivered alerts


def _emf_lines(env: dict[str, str]) -> list[dict[str, Any]]:
    """The EMF lines EmfTelemetry prints for count("undelivered", "alerts"), in a fresh process with
    `env` (Powertools reads its variables from the environment)."""
    code = ("from chalicelib.handlers import EmfTelemetry\n"
            "t = EmfTelemetry()\nt.count('undelivered', 'alerts')\nt.flush()\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "NETGUARD_"))}
    result = subprocess.run([sys.executable, "-B", "-c", code], cwd=ROOT, env={**clean, **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{") and '"_aws"' in line]


@pytest.mark.parametrize("stage", STAGES)
def test_undelivered_alerts_alarm_watches_the_metric_netguard_emits(stacks: dict[str, dict[str, Any]],
                                                                    stage: str) -> None:
    """The alarm's namespace, metric and dimensions are exactly those of the EMF line the functions print
    (with the packaged function's environment: POWERTOOLS_SERVICE_NAME adds a `service` dimension)."""
    template = stacks[stage]
    (alarm,) = [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values()
                if a["Properties"]["MetricName"] == "undelivered"]
    environments = {json.dumps({k: v for k, v in props["Environment"]["Variables"].items() if isinstance(v, str)},
                               sort_keys=True): name for name, props in _functions(template).items()}
    for env_json, name in environments.items():
        (line,) = _emf_lines(json.loads(env_json))
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        (dimension_set,) = directive["Dimensions"]
        assert [m["Name"] for m in directive["Metrics"]] == ["undelivered"]
        emitted = {d: line[d] for d in dimension_set}
        assert alarm["Namespace"] == directive["Namespace"], name
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == emitted, name
    assert alarm["Statistic"] == "Sum"
    # without the service name the line has other dimensions: the test sees what it compares
    (bare,) = _emf_lines({"POWERTOOLS_METRICS_NAMESPACE": "netguard"})
    assert bare["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["control"]]


# ------------------------------------------------------------------------------- signing key, roles

@pytest.mark.parametrize("stage", STAGES)
def test_only_the_functions_can_sign_ledger_records(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    template = stacks[stage]
    res = template["Resources"]
    key = res["LedgerSigningKey"]["Properties"]
    assert key["KeySpec"] == "HMAC_256" and key["KeyUsage"] == "GENERATE_VERIFY_MAC"
    roles = _role_logical_ids(template)
    refs = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "Stage": stage,
            **{f"{role}.Arn": _role_arn(role) for role in roles}}
    policy = _evaluate(key["KeyPolicy"], refs, {})["Statement"]

    def decide(principal: str, action: str) -> str:
        return _decide(policy, action, {"aws:PrincipalArn": principal}, principal)

    account_root = f"arn:aws:iam::{ACCOUNT}:root"
    admin = f"arn:aws:iam::{ACCOUNT}:role/Admin"  # can write the ledger table, administers KMS
    for role in roles:
        assert decide(_role_arn(role), "kms:GenerateMac") == "allow", role
        assert decide(_role_arn(role), "kms:VerifyMac") == "allow", role
    for principal in (admin, account_root):
        assert decide(principal, "kms:GenerateMac") == "deny", principal
        assert decide(principal, "kms:VerifyMac") == "allow", principal  # the restore CLI verifies
        for action in ("kms:DescribeKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:TagResource"):
            assert decide(principal, action) == "allow", (principal, action)
        # a grant would be a way around the policy's Deny-free statements: none is given
        assert decide(principal, "kms:CreateGrant") == "implicit deny", principal
    assert decide(f"arn:aws:iam::111111111111:role/{roles[0]}", "kms:VerifyMac") == "implicit deny"
    # The functions' IAM policy grants GenerateMac through the key's alias, which the stack creates.
    alias = _sub(res["LedgerSigningKeyAlias"]["Properties"]["AliasName"], stage)
    assert res["LedgerSigningKeyAlias"]["Properties"]["TargetKeyId"] == {"Ref": "LedgerSigningKey"}
    for name, document in _role_documents(template).items():
        (sign,) = [st for st in _as_list(document["Statement"]) if "kms:GenerateMac" in _as_list(st["Action"])]
        assert sign["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}, name
    assert template["Outputs"]["LedgerKeyArn"]["Value"] == {"Fn::GetAtt": ["LedgerSigningKey", "Arn"]}


@pytest.mark.parametrize("stage", STAGES)
def test_the_stack_pins_the_roles_to_its_own_resources_and_accounts(stacks: dict[str, dict[str, Any]],
                                                                    stage: str) -> None:
    template = stacks[stage]
    res = template["Resources"]
    roles = _role_logical_ids(template)
    guardrails = res["FunctionGuardrails"]
    assert guardrails["Type"] == "AWS::IAM::Policy"
    assert sorted(r["Ref"] for r in guardrails["Properties"]["Roles"]) == sorted(roles)
    for name in _functions(template):  # no function runs before the denies are in place
        assert "FunctionGuardrails" in _as_list(template["Resources"][_logical_id(template, name)]["DependsOn"]), name
    bucket = f"arn:aws:s3:::netguard-reports-{ACCOUNT}-{stage}"
    refs = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "Stage": stage,
            "OrganizationId": "o-abcdefghij", "MemberAccounts": MEMBER_ACCOUNTS, "ReportBucket.Arn": bucket,
            "AlertTopicKey.Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/topic"}

    def statements(organization: bool, members: bool) -> list[dict[str, Any]]:
        document = _evaluate(guardrails["Properties"]["PolicyDocument"], refs,
                             {"HasOrganization": organization, "HasMemberAccounts": members})
        return document["Statement"]

    def assume(st: list[dict[str, Any]], account: str, org: str | None) -> str:
        context = {"aws:ResourceAccount": account, **({"aws:ResourceOrgID": org} if org else {})}
        return _decide([s for s in st if s["Effect"] == "Deny"], "sts:AssumeRole", context)

    org = statements(True, False)
    assert assume(org, "333333333333", "o-abcdefghij") == "implicit deny"  # any account of the organization
    assert assume(org, "333333333333", "o-otherorgxyz") == "deny"
    assert assume(org, "333333333333", None) == "deny"  # an account in no organization: the key is missing
    accounts = statements(False, True)
    for account in (ACCOUNT, *MEMBER_ACCOUNTS):
        assert assume(accounts, account, None) == "implicit deny", account
    assert assume(accounts, "333333333333", None) == "deny"
    alone = statements(False, False)
    assert assume(alone, ACCOUNT, None) == "implicit deny" and assume(alone, MEMBER_ACCOUNTS[0], None) == "deny"
    # reports only into this stack's bucket, whatever account the file's wildcard allows
    (s3,) = [s for s in org if "s3:PutObject" in _as_list(s.get("Action", []))]
    assert s3["Effect"] == "Deny" and s3["NotResource"] == f"{bucket}/netguard/sweeps/*"
    assert not _wild(s3["NotResource"], f"arn:aws:s3:::netguard-reports-222222222222-{stage}/netguard/sweeps/x")
    # the functions may use the alert topic's key, through SNS only
    (topic_key,) = [s for s in org if s["Effect"] == "Allow"]
    assert set(topic_key["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert topic_key["Resource"] == refs["AlertTopicKey.Arn"]
    assert topic_key["Condition"] == {"StringEquals": {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}}
    # and the member stacks get the roles' ARNs from the stack's output
    separator, arns = template["Outputs"]["FunctionRoleArns"]["Value"]["Fn::Join"]
    assert separator == "," and sorted(a["Fn::GetAtt"][0] for a in arns) == sorted(roles)


# ------------------------------------------------------------------------------- example SCP

@pytest.fixture(scope="module")
def scp() -> dict[str, Any]:
    return stack.load_template(SCP)


APPROVERS = ["arn:aws:iam::*:role/netguard-approver"]
NETGUARD_ROLES = [f"arn:aws:iam::{ACCOUNT}:role/netguard-prod-OnApiCallRole-AbCdEf123456",
                  "arn:aws:iam::*:role/netguard-member"]


def _scp_content(scp: dict[str, Any], approvers: list[str], netguard: list[str]) -> dict[str, Any]:
    refs = {"ApproverRoleArns": approvers, "NetguardRoleArns": netguard, "PolicyName": "netguard-tag-guard",
            "TargetIds": ["ou-exam-ple12345"]}
    (policy,) = _resources(scp, "AWS::Organizations::Policy").values()
    assert policy["Properties"]["Type"] == "SERVICE_CONTROL_POLICY"
    return _evaluate(policy["Properties"]["Content"], refs, {})


def test_scp_template_passes_cfn_lint() -> None:
    _cfn_lint(str(SCP))


def test_scp_reserves_the_netguard_tag_keys_to_approvers_and_netguard(scp: dict[str, Any]) -> None:
    content = _scp_content(scp, APPROVERS, NETGUARD_ROLES)
    statements = content["Statement"]
    assert all(st["Effect"] == "Deny" and "Principal" not in st for st in statements)  # SCPs take no Principal
    someone = f"arn:aws:iam::{MEMBER_ACCOUNTS[0]}:role/DataScientist"
    approver = f"arn:aws:iam::{MEMBER_ACCOUNTS[0]}:role/netguard-approver"
    member = f"arn:aws:iam::{MEMBER_ACCOUNTS[0]}:role/netguard-member"

    def decide(principal: str, action: str, keys: list[str] | None) -> str:
        context: dict[str, Any] = {"aws:PrincipalArn": principal}
        if keys is not None:
            context["aws:TagKeys"] = keys
        return _decide(statements, action, context)

    tagging = ("ec2:CreateTags", "ec2:DeleteTags", "sagemaker:AddTags", "sagemaker:DeleteTags")
    on_create = ("ec2:RunInstances", "ec2:CreateSecurityGroup", "ec2:CreateVpcEndpoint",
                 "sagemaker:CreateNotebookInstance", "sagemaker:CreateTrainingJob")
    for key in NETGUARD_TAG_KEYS:
        for action in tagging + on_create:
            assert decide(someone, action, ["Owner", key]) == "deny", (action, key)
            for allowed in (approver, member, NETGUARD_ROLES[0]):
                assert decide(allowed, action, [key]) == "implicit deny", (allowed, action, key)
    for action in tagging + on_create:  # other tags, and no tags at all, are not this policy's business
        assert decide(someone, action, ["Owner", "Environment"]) == "implicit deny", action
    assert decide(someone, "sagemaker:CreateNotebookInstance", None) == "implicit deny"
    # EC2 DeleteTags without keys removes every tag: only approvers and netguard
    assert decide(someone, "ec2:DeleteTags", None) == "deny"
    assert decide(approver, "ec2:DeleteTags", None) == "implicit deny"
    assert decide(someone, "sagemaker:DeleteTags", ["Owner"]) == "implicit deny"
    # a principal merely named like an exempt one elsewhere in its path is not exempt
    assert decide(f"arn:aws:iam::{MEMBER_ACCOUNTS[0]}:role/x/netguard-approver-not", "ec2:CreateTags",
                  ["netguard:exempt"]) == "deny"


def test_scp_fits_the_policy_size_limit(scp: dict[str, Any]) -> None:
    """Service control policies are limited to 5,120 characters. With 20 role ARNs of 100 characters
    (10 approvers, 10 netguard roles; each list appears in both statements) the document still fits,
    written without whitespace (CloudFormation passes Content, a JSON object, as such)."""
    arn = "arn:aws:iam::*:role/" + "r" * 80
    assert len(arn) == 100
    content = _scp_content(scp, [arn] * 10, [arn] * 10)
    compact = json.dumps(content, separators=(",", ":"))
    assert len(compact) <= 5120, len(compact)
    print(f"SCP with 20 ARNs of 100 characters: {len(compact)} of 5,120 characters")
    # and the limit is real: 40 more such ARNs do not fit
    assert len(json.dumps(_scp_content(scp, [arn] * 30, [arn] * 30), separators=(",", ":"))) > 5120
    parameters = scp["Parameters"]
    pattern = re.compile(parameters["NetguardRoleArns"]["AllowedPattern"])
    assert all(pattern.fullmatch(a) for a in NETGUARD_ROLES + APPROVERS)
    assert not pattern.fullmatch("*") and not pattern.fullmatch("arn:aws:iam::*:user/admin")
    targets = re.compile(parameters["TargetIds"]["AllowedPattern"])
    assert all(targets.fullmatch(t) for t in ("r-ab12", "ou-ab12-abcdefgh", "123456789012"))
