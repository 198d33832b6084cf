"""The deployable stack (`make package`) and the member-account template, as a deployment relies on them.

Each stage is packaged once per module the way `make package` does it: `tools/stack.py merge`, then
`chalice package --merge-template` with NETGUARD_STAGE set, on a copy of the project (the helpers and
the copy rules are tests/test_packaging.py's; like those tests, these need PyPI or pip's cache).
What only AWS can tell is not tested here: that CloudFormation creates the stack, that Config accepts
the rules, that a StackSet reaches the member accounts.
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib.configrule import CONFIG_TYPES
from test_packaging import COPY_IGNORE, REGION, ROOT, STAGES, _functions, _stage_env, _template, _tool

sys.path.insert(0, str(ROOT / "tools"))

import stack

from chalicelib.policy import ConfigRule, load_policy
from chalicelib.settings import Settings

ACCOUNT = "123456789012"
MEMBER_ACCOUNTS = ["111111111111", "222222222222"]
# What the custom rule's handler evaluates (the types AWS Config records): the rule's scope must match.
CUSTOM_RULE_TYPES = set(CONFIG_TYPES)
QUEUES = {"RecheckQueue": ("recheck", "RecheckDeadLetterQueue"), "SweepQueue": ("sweep_worker", "SweepDeadLetterQueue")}
CENTRAL_ONLY = ("dynamodb:", "sns:", "ssm:", "secretsmanager:", "kms:", "xray:", "sqs:", "s3:", "logs:CreateLogGroup",
                "logs:CreateLogStream", "logs:PutLogEvents", "config:", "organizations:", "sts:")


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
        failures = dict(zip(STAGES, pool.map(lambda s: _package_stack(projects[s], s, outs[s]), STAGES)))
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
    """The value CloudFormation gives `value`, for the intrinsics the stack's environment uses."""
    if isinstance(value, (str, list)):
        return value
    (key, arg), = value.items()
    if key == "Ref":
        return refs[arg]
    if key == "Fn::Sub":
        text = arg
        for name, given in refs.items():
            if isinstance(given, str):
                text = text.replace("${" + name + "}", given)
        assert "${" not in text, text
        return text
    if key == "Fn::Join":
        return arg[0].join(_evaluate(arg[1], refs, conditions))
    if key == "Fn::If":
        return _evaluate(arg[1] if conditions[arg[0]] else arg[2], refs, conditions)
    raise AssertionError(f"unexpected intrinsic {key}")


def _names(template: dict[str, Any], stage: str) -> dict[str, str]:
    res = template["Resources"]
    return {"table": _sub(res["LedgerTable"]["Properties"]["TableName"], stage),
            "topic": _sub(res["AlertTopic"]["Properties"]["TopicName"], stage),
            "bucket": _sub(res["ReportBucket"]["Properties"]["BucketName"], stage),
            **{logical: _sub(res[logical]["Properties"]["QueueName"], stage)
               for q, (_, dlq) in QUEUES.items() for logical in (q, dlq)}}


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
def test_alert_topic_is_encrypted_and_tls_only(stacks: dict[str, dict[str, Any]], stage: str) -> None:
    res = stacks[stage]["Resources"]
    assert _sub(res["AlertTopic"]["Properties"]["TopicName"], stage) == f"netguard-alerts-{stage}"
    assert res["AlertTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    (deny,) = res["AlertTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


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
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == {"Ref": "ReportRetentionDays"}
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
    stage_env = _stage_env(stage)
    for name, props in _functions(template).items():
        variables = props["Environment"]["Variables"]
        for var, logical in by_ref.items():
            assert variables[var] == {"Ref": logical}, f"{name}: {var}"
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

def test_member_role_trusts_only_the_central_account_with_the_external_id(member: dict[str, Any]) -> None:
    role = member["Resources"]["MemberRole"]
    assert role["Properties"]["RoleName"] == {"Ref": "RoleName"}
    assert member["Parameters"]["RoleName"]["Default"] == "netguard-member"
    assert member["Parameters"]["ExternalId"]["NoEcho"] is True and "Default" not in member["Parameters"]["ExternalId"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
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

    def engine(st: dict[str, Any]) -> bool:
        return all(a.startswith(("sagemaker:", "ec2:", "tag:")) or a in ("iam:PassRole", "logs:CreateLogDelivery")
                   for a in _as_list(st["Action"]))

    assert statements == [st for st in central_statements if engine(st)]
    granted = {a for st in statements for a in _as_list(st["Action"])}
    central_engine = {a for st in central_statements for a in _as_list(st["Action"])
                      if a.startswith(("sagemaker:", "ec2:", "tag:"))}
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
