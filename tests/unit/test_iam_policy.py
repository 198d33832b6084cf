"""The Lambda role's IAM policy (.chalice/policy-<stage>.json) against the code, statically.

Chalice's `autogen_policy` only sees calls made in app.py, so the policies are written by hand
(`autogen_policy: false`). These tests keep them honest:

* coverage: every AWS operation the deployed code can call is allowed. The operations are found
  by reading the code (AST), not by listing them here: attribute calls whose name is an operation of
  a botocore service model (the services of SERVICES: sagemaker, ec2, route53, kms, ...) and the
  operation names given to `get_paginator(...)`, in every chalicelib module reachable by import
  from app.py (the Lambda entry point), plus Powertools idempotency's DynamoDB calls (its
  persistence layer is read the same way, from the installed package). Modules not reachable
  from app.py (the local CLI: `netguard scan`) are reported, not required;
* least privilege: no write on Resource "*", no action on "*" that IAM can scope to a resource
  (per the IAM action table cfn-lint ships), no wildcard actions, every resource ARN is of a
  resource type the action applies to, and the stage's resources are the ones config.json names;
* the check can fail: removing an action from a copy of the policy makes it report that action.
"""
from __future__ import annotations

import ast
import copy
import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
CHALICE_DIR = ROOT / ".chalice"
APP = ROOT / "app.py"
LIB = ROOT / "chalicelib"

# botocore service name -> IAM service prefix (the same for every service the code uses).
SERVICES = {
    "sagemaker": "sagemaker",
    "resourcegroupstaggingapi": "tag",
    "ec2": "ec2",
    "dynamodb": "dynamodb",
    "sns": "sns",
    "ssm": "ssm",
    "secretsmanager": "secretsmanager",
    "sts": "sts",
    "config": "config",
    "sqs": "sqs",
    "s3": "s3",
    "organizations": "organizations",
    "route53": "route53",
    "kms": "kms",
    "securityhub": "securityhub",  # the optional Security Hub channel (notify/securityhub.py)
    "efs": "elasticfilesystem",  # EFS mount targets of Studio's home file systems (resources/efs_mount_target.py)
}
# Operations that need no IAM permission.
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}
# Operations IAM has no action of their own for: they need the actions of what they do.
PERMISSIONS_OF = {
    "dynamodb:TransactWriteItems": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    "sqs:SendMessageBatch": {"sqs:SendMessage"},
    "sns:PublishBatch": {"sns:Publish"},  # IAM has no sns:PublishBatch action: it is authorized as sns:Publish
}
# What Lambda's SQS event source mappings do with the function's role (the code never calls these).
EVENT_SOURCE_MAPPING = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# What Powertools' DynamoDBPersistenceLayer (idempotency) calls; checked against its source below.
POWERTOOLS_IDEMPOTENCY = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# Writes that IAM cannot scope to a resource, so they may (must) be granted on "*".
# Writes IAM cannot scope to a resource (the service authorization reference lists no resource type).
UNSCOPABLE_WRITES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "logs:CreateLogDelivery",
                     "config:PutEvaluations"}
READ_PREFIXES = ("Describe", "List", "Get")
# Permissions AWS checks besides a read call itself (the EFS API reference, DescribeMountTargetSecurityGroups).
IMPLIED_BY_READS = {"ec2:DescribeNetworkInterfaceAttribute": "elasticfilesystem:DescribeMountTargetSecurityGroups"}


# --------------------------------------------------------------------------------------- model

@cache
def operations(service: str) -> dict[str, str]:
    """snake_case method name -> API operation name, from the botocore service model."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


@cache
def all_method_names() -> frozenset[str]:
    return frozenset(name for service in SERVICES for name in operations(service))


# ------------------------------------------------------------------------------------- scanner

@dataclass
class Scan:
    calls: dict[str, set[str]] = field(default_factory=dict)  # "service:Operation" -> {"file:line", ...}
    unresolved: list[str] = field(default_factory=list)

    def add(self, action: str, where: str) -> None:
        self.calls.setdefault(action, set()).add(where)

    def merge(self, other: Scan) -> None:
        for action, wheres in other.calls.items():
            for where in wheres:
                self.add(action, where)
        self.unresolved += other.unresolved

    @property
    def actions(self) -> set[str]:
        return set(self.calls)


def _terminal(node: ast.AST) -> str | None:
    """The last identifier of a receiver: `self.ec2` -> "ec2", `sm` -> "sm", `a.b().c` -> "c"."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _client_service(node: ast.AST) -> str | None:
    """`<anything>.client("svc", ...)` or `boto3.client("svc")` -> "svc" (None for anything else)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"
            and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in SERVICES):
        return node.args[0].value
    return None


def client_bindings(tree: ast.AST) -> dict[str, set[str]]:
    """Identifiers bound to a client of a known service: `self.ec2 = clients.client("ec2", ...)` -> ec2,
    and functions/properties that return one: `def ec2(self): return self.clients.client("ec2")` -> ec2."""
    bound: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for ret in ast.walk(node):
                service = _client_service(ret.value) if isinstance(ret, ast.Return) and ret.value else None
                if service:
                    bound.setdefault(node.name, set()).add(service)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            service = _client_service(node.value)
            if service is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = _terminal(target)
                if name:
                    bound.setdefault(name, set()).add(service)
    return bound


def _resolve(method: str, receiver: ast.AST, bindings: dict[str, set[str]]) -> list[str] | None:
    """The services a `receiver.method(...)` call can be an operation of; None if it cannot tell."""
    candidates = [s for s in SERVICES if method in operations(s)]
    direct = _client_service(receiver)
    if direct:
        return [direct] if direct in candidates else []
    name = _terminal(receiver)
    if name in bindings:
        return [s for s in bindings[name] if s in candidates]
    if len(candidates) == 1:
        return candidates
    hinted = [s for s in candidates if name and s in name.lower()]
    return hinted or None


def _paginator_names(node: ast.Call, tree: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[str] | None:
    """The operation names a `get_paginator(x)` call can get: the literal, or, when `x` is a parameter
    of the enclosing function, the literals every call of that function in the module passes for it."""
    if not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if not isinstance(arg, ast.Name):
        return None
    scope = parents.get(node)
    while scope is not None and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        scope = parents.get(scope)
    if scope is None:
        return None
    params = [a.arg for a in scope.args.posonlyargs + scope.args.args]
    if arg.id not in params and arg.id not in [a.arg for a in scope.args.kwonlyargs]:
        return None
    index = params.index(arg.id) if arg.id in params else None
    names: list[str] = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or _terminal(call.func) != scope.name or call is node:
            continue
        if isinstance(call.func, ast.Attribute) and params[:1] == ["self"] and index is not None:
            position = index - 1  # a method called on an instance: `self` is not passed
        else:
            position = index
        passed = [k.value for k in call.keywords if k.arg == arg.id]
        if position is not None and 0 <= position < len(call.args):
            passed.append(call.args[position])
        for value in passed:
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                return None
            names.append(value.value)
    return names or None


def scan_source(source: str, filename: str, bindings: dict[str, set[str]] | None = None) -> Scan:
    """Every AWS operation a module calls (as IAM actions, "service:Operation")."""
    tree = ast.parse(source, filename)
    known = dict(bindings or {})
    for name, services in client_bindings(tree).items():
        known.setdefault(name, set()).update(services)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    scan = Scan()
    names = all_method_names()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        where = f"{filename}:{node.lineno}"
        if node.func.attr == "get_paginator":
            methods = _paginator_names(node, tree, parents)
            if methods is None:
                scan.unresolved.append(f"{where}: {ast.unparse(node)}: cannot tell which operation it paginates")
                continue
            unknown = [m for m in methods if m not in names]
            if unknown:
                scan.unresolved.append(f"{where}: get_paginator({unknown}) is no operation of {sorted(SERVICES)}")
            methods = [m for m in methods if m in names]
        elif node.func.attr in names:
            methods = [node.func.attr]
        else:
            continue
        for method in methods:
            services = _resolve(method, receiver, known)
            if services is None:
                scan.unresolved.append(f"{where}: {ast.unparse(node.func)}() ({method}) could be any of "
                                       f"{[s for s in SERVICES if method in operations(s)]}")
                continue
            for service in services:
                scan.add(f"{SERVICES[service]}:{operations(service)[method]}", where)
    return scan


# ------------------------------------------------------------------------- what the Lambda runs

def _imports(tree: ast.AST, package: str | None) -> set[str]:
    """Project modules (chalicelib.*) a module imports, at any depth (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "chalicelib"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package or ""
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] != "chalicelib":
                continue
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # `from chalicelib import handlers`
    return found


def _module_path(module: str) -> Path | None:
    parts = module.split(".")
    candidate = ROOT.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def lambda_modules() -> list[Path]:
    """app.py and every chalicelib module reachable from it by import."""
    seen: dict[str, Path] = {"app": APP}
    queue = [("app", APP, None)]
    while queue:
        _, path, package = queue.pop()
        for module in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)), package):
            target = _module_path(module)
            if target is None or module in seen:
                continue
            seen[module] = target
            pkg = module if target.name == "__init__.py" else module.rpartition(".")[0]
            queue.append((module, target, pkg))
    return sorted(set(seen.values()))


def _powertools_idempotency_source() -> Path:
    import aws_lambda_powertools.utilities.idempotency.persistence.dynamodb as layer

    return Path(layer.__file__)


def _uses_powertools_idempotency(paths: Iterable[Path]) -> bool:
    return any("DynamoDBPersistenceLayer" in p.read_text(encoding="utf-8") for p in paths)


def scan_files(paths: Iterable[Path]) -> Scan:
    paths = list(paths)
    trees = {p: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in paths}
    bindings: dict[str, set[str]] = {}
    for tree in trees.values():
        for name, services in client_bindings(tree).items():
            bindings.setdefault(name, set()).update(services)
    total = Scan()
    for path in paths:
        total.merge(scan_source(path.read_text(encoding="utf-8"), _rel(path), bindings))
    return total


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


@lru_cache(maxsize=1)
def lambda_scan() -> Scan:
    modules = lambda_modules()
    scan = scan_files(modules)
    if _uses_powertools_idempotency(modules):
        for action in POWERTOOLS_IDEMPOTENCY:
            scan.add(action, "aws_lambda_powertools idempotency (DynamoDBPersistenceLayer)")
    return scan


def required_actions() -> set[str]:
    """The IAM actions the Lambda role needs for what the code calls (and what Lambda does for it)."""
    called = lambda_scan().actions - NO_PERMISSION_NEEDED
    needed = {a for op in called for a in PERMISSIONS_OF.get(op, {op})}
    return needed | EVENT_SOURCE_MAPPING


# ------------------------------------------------------------------------------------- policies

def load_config() -> dict[str, Any]:
    return json.loads((CHALICE_DIR / "config.json").read_text(encoding="utf-8"))


def stages() -> list[str]:
    return sorted(load_config()["stages"])


def policy_file(stage: str) -> Path:
    config = load_config()
    name = config["stages"][stage].get("iam_policy_file") or config.get("iam_policy_file") or f"policy-{stage}.json"
    return CHALICE_DIR / name


def load_policy_doc(stage: str) -> dict[str, Any]:
    return json.loads(policy_file(stage).read_text(encoding="utf-8"))


def stage_env(stage: str) -> dict[str, str]:
    config = load_config()
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return _as_list(policy["Statement"])


def _matches(pattern: str, value: str, case: bool) -> bool:
    # IAM wildcards are * and ? only: escape [ so fnmatch does not read it as a character class.
    pattern = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(value, pattern) if case else fnmatch.fnmatchcase(value.lower(), pattern.lower())


def allows(policy: dict[str, Any], action: str, resource: str | None = None) -> bool:
    """Whether an Allow statement grants `action` (on `resource`, if given; conditions ignored)."""
    for st in statements(policy):
        if st.get("Effect") != "Allow":
            continue
        if not any(_matches(a, action, case=False) for a in _as_list(st.get("Action", []))):
            continue
        if resource is None or any(_matches(r, resource, case=True) for r in _as_list(st.get("Resource", []))):
            return True
    return False


def missing_actions(policy: dict[str, Any], needed: Iterable[str]) -> set[str]:
    return {a for a in needed if not allows(policy, a)}


# cfn-lint ships the IAM action table (service -> actions -> resource types, resource ARN formats).
@lru_cache(maxsize=1)
def iam_table() -> dict[str, Any]:
    import cfnlint.data

    path = Path(cfnlint.data.__file__).parent / "AdditionalSpecs" / "Policies.json"
    return json.loads(path.read_text(encoding="utf-8"))


def iam_action(action: str) -> dict[str, Any] | None:
    prefix, _, name = action.partition(":")
    service = iam_table().get(prefix)
    if service is None:
        return None
    return service["Actions"].get(name.lower())


def arn_formats(action: str) -> list[str]:
    prefix = action.partition(":")[0]
    info = iam_action(action) or {}
    # The table spells some resource types differently in the two places ("Secret" / "secret").
    resources = {k.lower(): v for k, v in iam_table()[prefix].get("Resources", {}).items()}
    return [fmt for rtype in info.get("Resources", [])
            for fmt in resources.get(rtype.lower(), {}).get("ARNFormats", [])]


def arn_pattern_fits(pattern: str, fmt: str) -> bool:
    """Whether every ARN matched by policy resource `pattern` can be of ARN format `fmt`
    (approximately: wildcards stand for one arbitrary token, ${Var} for any field)."""
    regex = re.escape(fmt).replace(r"\.\*", ".*")
    regex = re.sub(r"\\\$\\\{[A-Za-z]+\\\}", "[^:]*", regex)
    return re.fullmatch(regex, pattern.replace("*", "x").replace("?", "x")) is not None


# ---------------------------------------------------------------------------------------- tests

def test_scanner_finds_calls_through_bindings_paginators_and_chained_clients() -> None:
    source = '''
class Lookups:
    def __init__(self, clients):
        self.ec2 = clients.client("ec2", "us-east-1")
        self.sagemaker = clients.client("sagemaker")

def f(clients, lookups, sns_client, table):
    lookups.ec2.describe_subnets(SubnetIds=["x"])
    lookups.sagemaker.get_paginator("list_tags").paginate(ResourceArn="a")
    clients.client("ssm").get_parameter(Name="/p")
    sns_client.publish(TopicArn="t", Message="m")
    table.get("not an AWS call")
    {}.update(a=1)

class Shared:
    @property
    def network(self):
        return self.clients.client("ec2", self.region)

    def prime(self):
        def pages(operation, key):
            for page in self.network.get_paginator(operation).paginate():
                yield from page.get(key, [])
        list(pages("describe_vpcs", "Vpcs"))
        list(pages(operation="describe_route_tables", key="RouteTables"))
'''
    scan = scan_source(source, "example.py")
    assert scan.actions == {"ec2:DescribeSubnets", "sagemaker:ListTags", "ssm:GetParameter", "sns:Publish",
                            "ec2:DescribeVpcs", "ec2:DescribeRouteTables"}
    assert scan.unresolved == []


def test_scanner_reports_what_it_cannot_attribute() -> None:
    # `tag_resource` is an operation of several services (dynamodb, sns, ...): on a receiver that is
    # neither a known client nor named after a service, the scanner must say it cannot tell.
    shared = [s for s in SERVICES if "tag_resource" in operations(s)]
    assert len(shared) > 1, shared
    scan = scan_source("def f(c):\n    c.tag_resource(ResourceArn='a', Tags=[])\n    c.get_paginator(name)\n", "x.py")
    assert scan.actions == set()
    assert len(scan.unresolved) == 2, scan.unresolved


def test_lambda_modules_are_found_from_app_py() -> None:
    modules = {_rel(p) for p in lambda_modules()}
    print("modules the Lambda can run:", sorted(modules))
    assert {"app.py", "chalicelib/handlers.py", "chalicelib/collect.py", "chalicelib/remediate.py",
            "chalicelib/ledger/__init__.py", "chalicelib/ledger/dynamodb.py"} <= modules


def test_every_aws_call_of_the_lambda_is_attributed_to_a_service() -> None:
    scan = lambda_scan()
    assert scan.unresolved == [], "calls the scanner cannot attribute to a service:\n" + "\n".join(scan.unresolved)


def test_scan_is_not_vacuous() -> None:
    needed = required_actions()
    print("AWS actions the Lambda needs:")
    for action in sorted(needed):
        where = lambda_scan().calls.get(action) or ["(implied: " + ", ".join(
            sorted(op for op, implied in PERMISSIONS_OF.items() if action in implied)) + ")"
            if action not in EVENT_SOURCE_MAPPING else "(Lambda's SQS event source mapping)"]
        print(f"  {action:45} {', '.join(sorted(where))}")
    # Known calls: if the scanner stopped seeing these, it would stop seeing new ones too.
    assert {"ec2:DescribeSecurityGroupRules", "ec2:DescribeNetworkInterfaces", "sagemaker:ListTags",
            "sagemaker:StopNotebookInstance", "ec2:RevokeSecurityGroupIngress", "dynamodb:PutItem"} <= needed


def test_powertools_idempotency_calls_are_the_ones_granted() -> None:
    # Scan the installed persistence layer: if a Powertools upgrade adds a DynamoDB call, this fails.
    source = _powertools_idempotency_source()
    scan = scan_source(source.read_text(encoding="utf-8"), source.name, {"client": {"dynamodb"}})
    assert scan.actions, "no DynamoDB call found in Powertools' DynamoDBPersistenceLayer: has it moved?"
    assert scan.actions <= POWERTOOLS_IDEMPOTENCY, scan.actions - POWERTOOLS_IDEMPOTENCY


def test_cli_only_operations_are_reported_not_required() -> None:
    lambda_paths = set(lambda_modules())
    others = sorted(p for p in LIB.rglob("*.py") if p not in lambda_paths)
    scan = scan_files(others)
    extra = scan.actions - lambda_scan().actions
    print("chalicelib modules not reachable from app.py:", [str(p.relative_to(LIB)) for p in others])
    print("operations only they call (local CLI credentials, not the Lambda role):", sorted(extra))
    assert scan.unresolved == [], "\n".join(scan.unresolved)


@pytest.mark.parametrize("stage", stages())
def test_policy_allows_every_operation_the_code_calls(stage: str) -> None:
    policy = load_policy_doc(stage)
    missing = missing_actions(policy, required_actions())
    assert not missing, f"{policy_file(stage).name} does not allow: {sorted(missing)}"


@pytest.mark.parametrize("stage", stages())
def test_policy_allows_every_remediation_permission(stage: str) -> None:
    from chalicelib.remediate import ACTIONS

    policy = load_policy_doc(stage)
    declared = {p for spec in ACTIONS.values() for p in spec.permissions}
    assert declared, "remediate.ACTIONS declares no permissions"
    assert not missing_actions(policy, declared)


def test_coverage_check_can_fail() -> None:
    policy = load_policy_doc(stages()[0])
    needed = required_actions()
    assert missing_actions(policy, needed) == set()
    for removed in ("ec2:DescribeSubnets", "sagemaker:StopNotebookInstance", "dynamodb:DeleteItem"):
        broken = copy.deepcopy(policy)
        for st in statements(broken):
            actions = [a for a in _as_list(st["Action"]) if a != removed]
            st["Action"] = actions
        assert missing_actions(broken, needed) == {removed}
    # A wildcard still covers it; a Deny statement grants nothing.
    broken = copy.deepcopy(policy)
    for st in statements(broken):
        st["Action"] = [a for a in _as_list(st["Action"]) if a != "ec2:DescribeSubnets"]
    broken["Statement"].append({"Effect": "Deny", "Action": "ec2:DescribeSubnets", "Resource": "*"})
    assert missing_actions(broken, needed) == {"ec2:DescribeSubnets"}
    broken["Statement"].append({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"})
    assert missing_actions(broken, needed) == set()


@pytest.mark.parametrize("stage", stages())
def test_policy_is_least_privilege(stage: str) -> None:
    policy = load_policy_doc(stage)
    problems = []
    for st in statements(policy):
        sid = st.get("Sid", "?")
        assert st.get("Effect") == "Allow", f"{sid}: only Allow statements are expected"
        assert "NotAction" not in st and "NotResource" not in st, f"{sid}: NotAction/NotResource grant too much"
        resources = _as_list(st["Resource"])
        for action in _as_list(st["Action"]):
            if "*" in action or "?" in action:
                problems.append(f"{sid}: wildcard action {action}")
                continue
            info = iam_action(action)
            if info is None:
                problems.append(f"{sid}: {action} is not an IAM action")
                continue
            name = action.partition(":")[2]
            for resource in resources:
                if resource == "*":
                    if not name.startswith(READ_PREFIXES) and action not in UNSCOPABLE_WRITES:
                        problems.append(f"{sid}: write {action} on Resource '*'")
                    if info.get("Resources"):
                        problems.append(f"{sid}: {action} can be scoped to {info['Resources']} but is on '*'")
                else:
                    formats = arn_formats(action)
                    if not any(arn_pattern_fits(resource, fmt) for fmt in formats):
                        problems.append(f"{sid}: {resource} is not a resource {action} applies to ({formats})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stage", stages())
def test_policy_grants_nothing_the_code_does_not_need(stage: str) -> None:
    policy = load_policy_doc(stage)
    granted = {a for st in statements(policy) for a in _as_list(st["Action"])}
    from chalicelib.remediate import ACTIONS

    support = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "kms:Decrypt"} | UNSCOPABLE_WRITES
    # what AWS checks besides the call itself (iam:PassRole for a flow log's delivery role...), as declared
    implied = {p for spec in ACTIONS.values() for p in spec.permissions}
    # ... and besides a read: granted only while the read that needs it is made
    implied |= {p for p, call in IMPLIED_BY_READS.items() if call in required_actions()}
    unused = granted - required_actions() - support - implied
    assert not unused, f"granted but never called: {sorted(unused)}"


@pytest.mark.parametrize("stage", stages())
def test_policy_resources_match_the_stage_config(stage: str) -> None:
    policy = load_policy_doc(stage)
    env = stage_env(stage)
    account, region = "123456789012", "us-east-1"
    table = env["NETGUARD_LEDGER_TABLE"]
    for op in ("PutItem", "GetItem", "UpdateItem", "DeleteItem"):
        assert allows(policy, f"dynamodb:{op}", f"arn:aws:dynamodb:{region}:{account}:table/{table}")
    assert not allows(policy, "dynamodb:PutItem", f"arn:aws:dynamodb:{region}:{account}:table/{table}-other")
    assert allows(policy, "sns:Publish", env["NETGUARD_ALERT_TOPIC_ARN"])
    param = env["NETGUARD_SLACK_WEBHOOK_PARAM"]
    if param.startswith("arn:aws:secretsmanager:") or param.startswith("secretsmanager:"):
        name = param.split(":secret:")[-1] if param.startswith("arn:") else param.partition(":")[2]
        assert allows(policy, "secretsmanager:GetSecretValue",
                      f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf")
    else:
        assert allows(policy, "ssm:GetParameter", f"arn:aws:ssm:{region}:{account}:parameter/{param.lstrip('/')}")
    # The stage's queues (named in app.py after NETGUARD_STAGE) and its report bucket.
    for queue in (f"netguard-recheck-{stage}", f"netguard-sweep-{stage}"):
        assert allows(policy, "sqs:SendMessage", f"arn:aws:sqs:{region}:{account}:{queue}")
    assert allows(policy, "s3:PutObject",
                  f"arn:aws:s3:::netguard-reports-{account}-{stage}/netguard/sweeps/x/summary.json")
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::netguard-reports-{account}-{stage}/other/key")
    # Secrets of this stage (Secrets Manager appends a random suffix to the name).
    assert allows(policy, "secretsmanager:GetSecretValue",
                  f"arn:aws:secretsmanager:{region}:{account}:secret:netguard/{stage}/slack-webhook-AbCdEf")
    for other in set(stages()) - {stage}:
        other_env = stage_env(other)
        assert not allows(policy, "dynamodb:PutItem",
                          f"arn:aws:dynamodb:{region}:{account}:table/{other_env['NETGUARD_LEDGER_TABLE']}")
        assert not allows(policy, "sns:Publish", other_env["NETGUARD_ALERT_TOPIC_ARN"])
        assert not allows(policy, "sqs:SendMessage", f"arn:aws:sqs:{region}:{account}:netguard-recheck-{other}")
        assert not allows(policy, "secretsmanager:GetSecretValue",
                          f"arn:aws:secretsmanager:{region}:{account}:secret:netguard/{other}/slack-webhook-AbCdEf")


def _handler_names() -> list[str]:
    names = []
    for node in ast.walk(ast.parse(APP.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and (node.func.attr.startswith("on_") or node.func.attr in ("lambda_function", "schedule"))):
            names += [k.value.value for k in node.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)]
    return names


@pytest.mark.parametrize("stage", stages())
def test_functions_can_write_their_logs(stage: str) -> None:
    policy = load_policy_doc(stage)
    app_name = load_config()["app_name"]
    handlers = _handler_names()
    assert handlers, "no event handlers found in app.py"
    for handler in handlers:
        # `chalice deploy` names functions <app>-<stage>-<handler>; CloudFormation names them
        # <stack>-<LogicalId>-<suffix>, so the stack of `chalice package` output must be <app>-<stage>.
        logical = "".join(part.capitalize() for part in handler.split("_"))
        for function in (f"{app_name}-{stage}-{handler}", f"{app_name}-{stage}-{logical}-AbC123xYz"):
            group = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{function}"
            assert allows(policy, "logs:CreateLogGroup", group)
            for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
                assert allows(policy, action, f"{group}:log-stream:2025/01/01/[$LATEST]0123abcd")
    assert not allows(policy, "logs:PutLogEvents",
                      "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/other-function:log-stream:x")


def test_tagging_is_limited_to_the_tags_netguard_writes() -> None:
    from chalicelib.remediate import OWNER_TAG, QUARANTINE_TAG

    for stage in stages():
        doc = load_policy_doc(stage)
        tagging = [st for st in statements(doc) if "sagemaker:AddTags" in _as_list(st["Action"])]
        assert len(tagging) == 1
        condition = tagging[0].get("Condition", {}).get("ForAllValues:StringEquals", {})
        assert sorted(condition.get("aws:TagKeys")) == sorted([QUARANTINE_TAG, OWNER_TAG])
        for st in statements(doc):
            if "ec2:CreateTags" in _as_list(st["Action"]):
                cond = st.get("Condition", {})
                # the Owner tag on existing resources, or any tag only while creating a flow log or endpoint
                assert (cond.get("ForAllValues:StringEquals", {}).get("aws:TagKeys") == [OWNER_TAG]
                        or cond.get("StringEquals", {}).get("ec2:CreateAction") == ["CreateFlowLogs",
                                                                                     "CreateVpcEndpoint"]), st


# The encryption context each service binds its ciphertext to (SSM Parameter Store: the parameter's
# ARN; Secrets Manager: the secret's ARN and version id), as condition keys of kms:Decrypt.
DECRYPT_CONTEXT = {"ssm.*.amazonaws.com": ("kms:EncryptionContext:PARAMETER_ARN", "ssm:GetParameter"),
                   "secretsmanager.*.amazonaws.com": ("kms:EncryptionContext:SecretARN",
                                                      "secretsmanager:GetSecretValue")}


def test_kms_decrypt_only_through_ssm_or_secrets_manager_for_the_stage_webhook() -> None:
    """kms:Decrypt on any key, but only as SSM or Secrets Manager decrypting the stage's own parameter
    or secret (the encryption context names it): not another parameter sharing the key."""
    for stage in stages():
        doc = load_policy_doc(stage)
        decrypts = [st for st in statements(doc) if "kms:Decrypt" in _as_list(st["Action"])]
        services = set()
        for st in decrypts:
            condition = st.get("Condition", {})
            assert list(condition) == ["StringLike"], st  # every key must hold (one operator, ANDed keys)
            (via,) = _as_list(condition["StringLike"].get("kms:ViaService"))
            context_key, read = DECRYPT_CONTEXT[via]
            services.add(via)
            assert set(condition["StringLike"]) == {"kms:ViaService", context_key}, st
            scoped = _as_list(condition["StringLike"][context_key])
            # exactly the resources the policy lets the functions read from that service
            readable = [r for s2 in statements(doc) if read in _as_list(s2["Action"]) for r in _as_list(s2["Resource"])]
            assert sorted(scoped) == sorted(readable), (st, readable)
            assert all(f"/{stage}/" in arn for arn in scoped), scoped
        assert services == set(DECRYPT_CONTEXT)
        region, account = "us-east-1", "123456789012"
        env = stage_env(stage)
        parameter = f"arn:aws:ssm:{region}:{account}:parameter/{env['NETGUARD_SLACK_WEBHOOK_PARAM'].lstrip('/')}"
        ssm = next(st for st in decrypts if st["Condition"]["StringLike"]["kms:ViaService"].startswith("ssm."))
        assert _matches(ssm["Condition"]["StringLike"]["kms:EncryptionContext:PARAMETER_ARN"], parameter, case=True)
        assert not _matches(ssm["Condition"]["StringLike"]["kms:EncryptionContext:PARAMETER_ARN"],
                            f"arn:aws:ssm:{region}:{account}:parameter/other/secret", case=True)


def test_stages_share_one_policy_shape() -> None:
    """Stages differ only in which resources (stage-named) they reach, never in what they may do."""
    shapes = {}
    for stage in stages():
        doc = load_policy_doc(stage)
        shapes[stage] = [(st.get("Sid"), sorted(_as_list(st["Action"])),
                          json.dumps(st.get("Condition"), sort_keys=True).replace(f"/{stage}/", "/<stage>/")
                          .replace(f"-{stage}\"", "-<stage>\""),
                          # the stage as a name part, not inside a word (Security Hub's "product/...": prod)
                          [re.sub(rf"(?<![a-z]){stage}(?![a-z])", "<stage>", r) for r in _as_list(st["Resource"])])
                         for st in statements(doc)]
    first, *rest = stages()
    for stage in rest:
        assert shapes[stage] == shapes[first], f"policies of {first} and {stage} differ beyond the stage name"


def test_chalice_uses_these_policy_files() -> None:
    config = load_config()
    assert config.get("autogen_policy") is False, "autogen_policy must be false: Chalice only sees calls in app.py"
    for stage in stages():
        stage_config = config["stages"][stage]
        assert stage_config.get("autogen_policy", False) is False
        assert stage_config.get("manage_iam_role", True) is True
        assert policy_file(stage).is_file(), policy_file(stage)


# ------------------------------------------------------------------------ issue 11: scoped grants

EC2_ARN_TYPES = {"AWS::EC2::VPC": "vpc", "AWS::EC2::Subnet": "subnet", "AWS::EC2::VPCEndpoint": "vpc-endpoint",
                 "AWS::EC2::SecurityGroup": "security-group"}
SAGEMAKER_ARN_TYPES = {"AWS::SageMaker::NotebookInstance": "notebook-instance",
                       "AWS::SageMaker::TrainingJob": "training-job",
                       "AWS::SageMaker::ProcessingJob": "processing-job",
                       "AWS::SageMaker::HyperParameterTuningJob": "hyper-parameter-tuning-job",
                       "AWS::SageMaker::TransformJob": "transform-job", "AWS::SageMaker::Model": "model",
                       "AWS::SageMaker::EndpointConfig": "endpoint-config", "AWS::SageMaker::Endpoint": "endpoint",
                       "AWS::SageMaker::Domain": "domain"}


@pytest.mark.parametrize("stage", stages())
def test_owner_tag_can_be_written_on_every_resource_type_tag1_covers(stage: str) -> None:
    """TAG.1 adds the Owner tag to the resource the event names: every type it covers must be
    taggable with Owner (a missing ARN type fails with UnauthorizedOperation at remediation time)."""
    from chalicelib.policy import load_policy
    from chalicelib.remediate import OWNER_TAG

    doc = load_policy_doc(stage)
    tag1 = load_policy().control("TAG.1")
    owner_only = {"ForAllValues:StringEquals": {"aws:TagKeys": [OWNER_TAG]}}
    region, account = "us-east-1", "123456789012"
    assert set(tag1.resource_types) <= set(EC2_ARN_TYPES) | set(SAGEMAKER_ARN_TYPES), tag1.resource_types
    for rtype in tag1.resource_types:
        if rtype in EC2_ARN_TYPES:
            action, arn = "ec2:CreateTags", f"arn:aws:ec2:{region}:{account}:{EC2_ARN_TYPES[rtype]}/x-0123"
            granting = [st for st in statements(doc) if action in _as_list(st["Action"])
                        and st.get("Condition") == owner_only
                        and any(_matches(r, arn, case=True) for r in _as_list(st["Resource"]))]
        else:
            action, arn = "sagemaker:AddTags", f"arn:aws:sagemaker:{region}:{account}:{SAGEMAKER_ARN_TYPES[rtype]}/x"
            granting = [st for st in statements(doc) if action in _as_list(st["Action"])
                        and any(_matches(r, arn, case=True) for r in _as_list(st["Resource"]))]
        assert granting, f"{rtype}: {action} on {arn} (Owner tag only) is not allowed"


@pytest.mark.parametrize("stage", stages())
def test_pass_role_is_only_the_flow_log_delivery_role(stage: str) -> None:
    """iam:PassRole only for the delivery role VPC.3 names (policies/vpc.toml), only to flow logs.
    Pointing VPC.3 at another role means changing PassFlowLogDeliveryRole too: this test says so."""
    from chalicelib.policy import load_policy

    doc = load_policy_doc(stage)
    passing = [st for st in statements(doc) if "iam:PassRole" in _as_list(st["Action"])]
    assert len(passing) == 1
    (st,) = passing
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "vpc-flow-logs.amazonaws.com"}}
    params = load_policy().control("VPC.3").params
    if params.get("destination_type", "cloud-watch-logs") == "cloud-watch-logs":
        role = params["deliver_logs_role_arn"].replace("{account}", "123456789012")
        assert allows(doc, "iam:PassRole", role), (
            f"VPC.3 delivers through {role}: change PassFlowLogDeliveryRole in {policy_file(stage).name} to it")
    for other in ("arn:aws:iam::123456789012:role/Admin",
                  "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole",
                  "arn:aws:iam::123456789012:role/netguard-member"):
        assert not allows(doc, "iam:PassRole", other), other


@pytest.mark.parametrize("stage", stages())
def test_ledger_records_are_signed_with_the_stage_key_only(stage: str) -> None:
    """kms:GenerateMac on the key whose alias is the stage's (the stack creates the key and the alias;
    the key policy admits only the functions' roles). kms:VerifyMac is the restore CLI's, not the
    functions'."""
    doc = load_policy_doc(stage)
    signing = [st for st in statements(doc) if "kms:GenerateMac" in _as_list(st["Action"])]
    assert len(signing) == 1
    (st,) = signing
    assert _as_list(st["Action"]) == ["kms:GenerateMac"]
    assert st["Resource"] == "arn:aws:kms:*:*:key/*"
    assert st["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": f"alias/netguard-ledger-{stage}"}}
    assert not allows(doc, "kms:VerifyMac")


@pytest.mark.parametrize("stage", stages())
def test_failed_events_may_go_to_the_stage_events_dead_letter_queue(stage: str) -> None:
    doc = load_policy_doc(stage)
    region, account = "us-east-1", "123456789012"
    assert allows(doc, "sqs:SendMessage", f"arn:aws:sqs:{region}:{account}:netguard-events-dlq-{stage}")
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):  # only Lambda's destination sends there
        assert not allows(doc, action, f"arn:aws:sqs:{region}:{account}:netguard-events-dlq-{stage}")
    for other in set(stages()) - {stage}:
        assert not allows(doc, "sqs:SendMessage", f"arn:aws:sqs:{region}:{account}:netguard-events-dlq-{other}")


def test_route53_and_kms_calls_are_seen_by_the_scanner() -> None:
    source = '''
def zones(clients, vpc_id, region):
    return clients.client("route53").list_hosted_zones_by_vpc(VPCId=vpc_id, VPCRegion=region)

class Signer:
    def __init__(self, clients):
        self.kms = clients.client("kms")

    def sign(self, key, message):
        return self.kms.generate_mac(KeyId=key, Message=message, MacAlgorithm="HMAC_SHA_256")
'''
    scan = scan_source(source, "example.py")
    assert scan.actions == {"route53:ListHostedZonesByVPC", "kms:GenerateMac"}, scan.actions
    assert scan.unresolved == []
    for stage in stages():
        assert missing_actions(load_policy_doc(stage), scan.actions) == set()
