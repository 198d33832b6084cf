"""netguard's CloudFormation: the merge template of a stage, and the generated parts of deploy/*.yaml.

    .venv/bin/python tools/stack.py write          # regenerate the generated sections of deploy/*.yaml
    .venv/bin/python tools/stack.py check          # exit 1 when a generated section is stale
    .venv/bin/python tools/stack.py merge --stage prod --out build/netguard-stack-prod.json

How the stack is built (`make package`): `chalice package --merge-template FILE` deep-merges FILE
into the SAM template Chalice writes for a stage. deploy/netguard-stack.yaml is that FILE for every
stage: its resource names are `!Sub ...-${Stage}`. CloudFormation cannot know which Chalice stage a
template was packaged for (the functions' queue names are baked in at packaging), so `merge` writes
a copy whose Stage parameter defaults to, and only allows, the packaged stage. The copy is JSON:
given a YAML file to merge, Chalice would write sam.yaml instead of sam.json.

What mirrors another source is generated, between `# BEGIN <section>` and `# END <section>` lines,
so it cannot drift (tests/packaging/test_stack.py runs `check`; `merge` refuses a stale template):

- managed-config-rules (netguard-stack.yaml): one AWS::Config::ConfigRule per `deploy = true` entry
  of policies/config-rules.toml;
- member-permissions (member-account.yaml): the statements of .chalice/policy-prod.json a member
  account needs: the engine's reads and remediations (tools/iam.py: shared lookups, the resource
  types' reads, the actions' writes); ledger, signing key, alerts, secrets, logs, tracing, queues and
  reports stay in the central account;
- .chalice/policy-<stage>.json, whole files: the Lambda role's policy of each stage (tools/iam.py);
- forwarding-rules (member-account.yaml): one EventBridge rule per central event handler, with the
  handler's own pattern (chalicelib.handlers.event_patterns), targeting the central default bus.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import iam  # noqa: E402  (tools/iam.py)

from chalicelib.policy import ConfigRule, load_policy  # noqa: E402

STACK = ROOT / "deploy" / "netguard-stack.yaml"
MEMBER = ROOT / "deploy" / "member-account.yaml"
CENTRAL_POLICY = ROOT / ".chalice" / "policy-prod.json"

# Trigger type of each AWS managed rule, from its page in the AWS Config developer guide. A periodic
# rule gets MaximumExecutionFrequency and no Scope; a change-triggered one gets Scope only (Config
# rejects a frequency for it). A rule not listed here is an error: look it up before deploying it.
PERIODIC_RULES = frozenset({
    "SAGEMAKER_ENDPOINT_CONFIG_PROD_INSTANCE_COUNT",
    "SAGEMAKER_NOTEBOOK_NO_DIRECT_INTERNET_ACCESS",
    "VPC_ENDPOINT_ENABLED",
    "VPC_FLOW_LOGS_ENABLED",
})
CHANGE_TRIGGERED_RULES = frozenset({
    "INCOMING_SSH_DISABLED",
    "RESTRICTED_INCOMING_TRAFFIC",
    "SAGEMAKER_DOMAIN_IN_VPC",
    "SAGEMAKER_MODEL_IN_VPC",
    "SAGEMAKER_MODEL_ISOLATION_ENABLED",
    "SAGEMAKER_NOTEBOOK_INSTANCE_INSIDE_VPC",
    "SAGEMAKER_NOTEBOOK_INSTANCE_ROOT_ACCESS_CHECK",
    "SUBNET_AUTO_ASSIGN_PUBLIC_IP_DISABLED",
    "VPC_DEFAULT_SECURITY_GROUP_CLOSED",
})

# Which statements of the central policy a member account needs: the engine's reads and
# remediations. Every action of the central policy must be classified, so a new service is a decision.
MEMBER_SERVICES = frozenset({"sagemaker", "ec2", "route53", "tag", "securityhub"})  # securityhub: findings are
# imported by the account they are about (the default product ARN), through the member role
MEMBER_ACTIONS = frozenset({"iam:PassRole", "logs:CreateLogDelivery"})
CENTRAL_SERVICES = frozenset({"cloudwatch", "config", "dynamodb", "kms", "logs", "organizations", "s3",
                              "secretsmanager", "sns", "sqs", "ssm", "sts", "xray"})

FORWARD_TARGET = {
    "Fn::Sub": [
        "arn:${AWS::Partition}:events:${Region}:${CentralAccountId}:event-bus/default",
        {"Region": {"Fn::If": ["SameRegion", {"Ref": "AWS::Region"}, {"Ref": "CentralRegion"}]}},
    ]
}


class StackError(Exception):
    """A template that cannot be generated or merged, with the reason."""


# ----------------------------------------------------------------------------- CloudFormation YAML

class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt ...) read as their long forms."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader)


class _Dumper(yaml.SafeDumper):
    """Block style with indented lists, as the hand-written parts are, and no YAML aliases
    (CloudFormation rejects them)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _yaml(resources: dict[str, Any], indent: int) -> str:
    text = yaml.dump(resources, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


# ----------------------------------------------------------------------------- generated sections

def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)


def managed_rule_id(rule: ConfigRule) -> str:
    return "ManagedRule" + _camel(rule.name)


def managed_rules(rules: Iterable[ConfigRule]) -> dict[str, Any]:
    """The AWS::Config::ConfigRule resources of the rules to deploy."""
    out: dict[str, Any] = {}
    for rule in rules:
        if not rule.deploy:
            continue
        if rule.identifier not in PERIODIC_RULES | CHANGE_TRIGGERED_RULES:
            raise StackError(f"{rule.source}: {rule.identifier}: add it to PERIODIC_RULES or CHANGE_TRIGGERED_RULES "
                             "in tools/stack.py (its 'Trigger type' in the AWS Config developer guide)")
        props: dict[str, Any] = {
            "ConfigRuleName": {"Fn::Sub": f"netguard-{rule.name}-${{Stage}}"},
            "Description": f"netguard {', '.join(rule.controls)}: AWS managed rule {rule.identifier} "
                           f"(policies/{rule.source}).",
            "Source": {"Owner": "AWS", "SourceIdentifier": rule.identifier},
        }
        if rule.parameters:
            props["InputParameters"] = dict(rule.parameters)
        if rule.identifier in PERIODIC_RULES:
            props["MaximumExecutionFrequency"] = {"Ref": "ConfigRuleFrequency"}
        else:
            props["Scope"] = {"ComplianceResourceTypes": list(rule.resource_types)}
        out[managed_rule_id(rule)] = {"Type": "AWS::Config::ConfigRule", "Condition": "DeployManagedConfigRules",
                                      "Properties": props}
    return out


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def member_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of the central policy a member account needs, unchanged and in order."""
    out = []
    engine = {st["Sid"] for st in iam.read_statements() + iam.action_statements()}
    for st in policy["Statement"]:
        actions = _actions(st)
        if st.get("Sid") in engine:  # what the registry's reads or an action needs: the engine's, member-side
            out.append(st)
            continue
        member = [a for a in actions if a.split(":")[0].lower() in MEMBER_SERVICES or a in MEMBER_ACTIONS]
        unknown = [a for a in actions if a not in member and a.split(":")[0].lower() not in CENTRAL_SERVICES]
        if unknown:
            raise StackError(f"{CENTRAL_POLICY.name} statement {st.get('Sid')}: {unknown} are neither member nor "
                             "central actions: classify them in tools/stack.py")
        if member and len(member) != len(actions):
            raise StackError(f"{CENTRAL_POLICY.name} statement {st.get('Sid')} mixes member and central actions: "
                             "split it")
        if member:
            if "NotAction" in st or "NotResource" in st:
                raise StackError(f"{CENTRAL_POLICY.name} statement {st.get('Sid')}: NotAction/NotResource")
            out.append(st)
    if not out:
        raise StackError(f"{CENTRAL_POLICY.name}: no SageMaker, EC2 or tagging statement found")
    return out


def member_permissions(policy: dict[str, Any]) -> dict[str, Any]:
    return {"MemberPermissions": {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "netguard-member",
            "Roles": [{"Ref": "MemberRole"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": member_statements(policy)},
        },
    }}


def forward_rule_id(handler: str) -> str:
    return "Forward" + _camel(handler)


def forwarding_rules(patterns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One rule per central event handler, matching what that handler matches."""
    return {forward_rule_id(handler): {
        "Type": "AWS::Events::Rule",
        "Condition": "ForwardEvents",
        "Properties": {
            "Description": f"netguard: forward to the central account what its {handler} function handles",
            "EventBusName": "default",
            "State": "ENABLED",
            "EventPattern": pattern,
            "Targets": [{"Id": "netguard-central-bus", "Arn": FORWARD_TARGET,
                         "RoleArn": {"Fn::GetAtt": ["ForwarderRole", "Arn"]}}],
        },
    } for handler, pattern in patterns.items()}


def _central_patterns() -> dict[str, dict[str, Any]]:
    from chalicelib.handlers import event_patterns  # imports the engine: only when this section is wanted

    return event_patterns(load_policy())


@dataclass(frozen=True)
class Section:
    path: Path
    name: str
    render: Callable[[], dict[str, Any]]


SECTIONS = (
    Section(STACK, "managed-config-rules", lambda: managed_rules(load_policy().config_rules)),
    Section(MEMBER, "member-permissions",
            lambda: member_permissions(json.loads(CENTRAL_POLICY.read_text(encoding="utf-8")))),
    Section(MEMBER, "forwarding-rules", lambda: forwarding_rules(_central_patterns())),
)


def _bounds(lines: list[str], section: Section) -> tuple[int, int, int]:
    """(line of BEGIN, line of END, indent) of a section."""
    begin = [i for i, line in enumerate(lines) if line.strip().startswith(f"# BEGIN {section.name}:")]
    end = [i for i, line in enumerate(lines) if line.strip() == f"# END {section.name}"]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise StackError(f"{section.path.name}: needs one '# BEGIN {section.name}: ...' line and one "
                         f"'# END {section.name}' line after it")
    return begin[0], end[0], len(lines[begin[0]]) - len(lines[begin[0]].lstrip())


def _rewrite(text: str, section: Section) -> str:
    lines = text.splitlines(keepends=True)
    begin, end, indent = _bounds(lines, section)
    body = _yaml(section.render(), indent)
    return "".join(lines[:begin + 1]) + body + "".join(lines[end:])


def _stages() -> list[str]:
    return sorted(json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))["stages"])


def stale_sections() -> list[str]:
    """The generated sections (and policy files) that differ from what their sources give now."""
    stale = [str(iam.policy_path(stage).relative_to(ROOT)) for stage in _stages()
             if not iam.policy_path(stage).is_file()
             or iam.policy_path(stage).read_text(encoding="utf-8") != iam.render(stage)]
    for section in SECTIONS:
        text = section.path.read_text(encoding="utf-8")
        if _rewrite(text, section) != text:
            stale.append(f"{section.path.relative_to(ROOT)}: {section.name}")
    return stale


def write() -> list[str]:
    changed = stale_sections()
    for stage in _stages():  # the policies first: the member role is made from prod's
        iam.policy_path(stage).write_text(iam.render(stage), encoding="utf-8")
    for section in SECTIONS:
        text = section.path.read_text(encoding="utf-8")
        new = _rewrite(text, section)
        if new != text:
            section.path.write_text(new, encoding="utf-8")
    return changed


def merge_template(stage: str) -> dict[str, Any]:
    """deploy/netguard-stack.yaml for one stage, ready for `chalice package --merge-template`."""
    if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", stage):
        raise StackError(f"stage {stage!r}: lower-case letters and digits, as in .chalice/config.json")
    stale = [s for s in stale_sections() if s.startswith(str(STACK.relative_to(ROOT)))]
    if stale:
        raise StackError(f"stale generated sections ({'; '.join(stale)}): run tools/stack.py write")
    template = load_template(STACK)
    template["Parameters"]["Stage"].update(Default=stage, AllowedValues=[stage])
    return template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write", help="regenerate the generated sections of deploy/*.yaml")
    sub.add_parser("check", help="exit 1 when a generated section is stale")
    merge = sub.add_parser("merge", help="write the merge template of a stage")
    merge.add_argument("--stage", required=True)
    merge.add_argument("--out", type=Path, help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        if args.command == "write":
            for name in write():
                print(f"updated {name}")
        elif args.command == "check":
            stale = stale_sections()
            for name in stale:
                print(f"stale: {name} (run tools/stack.py write)", file=sys.stderr)
            return 1 if stale else 0
        else:
            text = json.dumps(merge_template(args.stage), indent=2) + "\n"
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
    except StackError as exc:
        print(f"tools/stack.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
