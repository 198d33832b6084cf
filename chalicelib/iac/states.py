"""Declared resources -> the engine's Resources (the states chalicelib/resources collectors produce), and
the engine's evaluation of the baseline over them.

SageMaker resources are mapped first; what they use (subnets, security groups, their VPC, with the kind of
user they are) comes from the registry's own `related` functions, as in a scan, so that SG.1's and VPC.9's
"used by SageMaker" scope is the same. Interface endpoints, NAT gateways and Lambda functions in the file
use network resources too, as their network interfaces tell a scan.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..graph import related
from ..model import ENDPOINT, ENDPOINT_CONFIG, Control, Finding, Resource, ResourceRef
from ..resources.endpoint_config import variants as variants_of
from . import network
from .index import Index, boolean, number, pick, tags_of
from .model import Declared, Parsed, Ref
from .unknown import UNKNOWN, Unknown, evaluate_known, is_unknown, reason_of

NOTEBOOK, MODEL, DOMAIN = "AWS::SageMaker::NotebookInstance", "AWS::SageMaker::Model", "AWS::SageMaker::Domain"
KMS_KEY, KMS_ALIAS = "AWS::KMS::Key", "AWS::KMS::Alias"
LAMBDA_TYPES = ("AWS::Lambda::Function", "AWS::Serverless::Function")


@dataclass
class Mapped:
    decl: Declared
    resource: Resource
    tags: Any  # {key: value} or an Unknown


def _name(decl: Declared, prop: str) -> Any:
    value = decl.properties.get(prop)
    return decl.id if value is None else value


def _vpc_config(ix: Index, value: Any, owner: str) -> Any:
    if value is None:
        return None
    if is_unknown(value) or not isinstance(value, Mapping):
        return value if is_unknown(value) else Unknown(f"{owner}.VpcConfig is not a mapping")
    return {"Subnets": ix.idents(value.get("Subnets"), f"{owner}.VpcConfig.Subnets"),
            "SecurityGroupIds": ix.idents(value.get("SecurityGroupIds"), f"{owner}.VpcConfig.SecurityGroupIds")}


def notebook_state(ix: Index, decl: Declared) -> dict[str, Any]:
    props = decl.properties
    subnet = props.get("SubnetId")
    return {"NotebookInstanceName": _name(decl, "NotebookInstanceName"), "NotebookInstanceStatus": None,
            "DirectInternetAccess": props.get("DirectInternetAccess", "Enabled"),  # AWS's defaults
            "RootAccess": props.get("RootAccess", "Enabled"),
            "SubnetId": None if subnet is None else ix.ident(subnet, f"{decl.id}.SubnetId"),
            "SecurityGroups": ix.idents(props.get("SecurityGroupIds"), f"{decl.id}.SecurityGroupIds"),
            "InstanceType": props.get("InstanceType"),
            "Subnet": None if subnet is None else network.subnet_view(ix, subnet, f"{decl.id}.SubnetId")}


def model_state(ix: Index, decl: Declared) -> dict[str, Any]:
    vpc_config = _vpc_config(ix, decl.properties.get("VpcConfig"), decl.id)
    state = {"ModelName": _name(decl, "ModelName"),
             "EnableNetworkIsolation": boolean(decl.properties, "EnableNetworkIsolation", False, decl.id),
             "VpcConfig": vpc_config}
    subnets = vpc_config if is_unknown(vpc_config) else (vpc_config or {}).get("Subnets", [])
    network.in_vpc(ix, state, subnets, f"{decl.id}.VpcConfig.Subnets")
    return state


def _variants(ix: Index, value: Any, owner: str) -> Any:
    if value is None:
        return []
    if is_unknown(value) or not isinstance(value, list):
        return value if is_unknown(value) else Unknown(f"{owner} is not a list")
    out = []
    for i, variant in enumerate(value):
        if is_unknown(variant) or not isinstance(variant, Mapping):
            return variant if is_unknown(variant) else Unknown(f"{owner}[{i}] is not a mapping")
        item = dict(variant)
        if "ModelName" in item:
            item["ModelName"] = ix.ident(item["ModelName"], f"{owner}[{i}].ModelName")
        if "InitialInstanceCount" in item:
            item["InitialInstanceCount"] = number(item["InitialInstanceCount"], f"{owner}[{i}].InitialInstanceCount")
        out.append(item)
    return variants_of({"V": out}, "V")


def key_manager(ix: Index, value: Any, owner: str) -> Any:
    """KMS's KeyManager of the key an endpoint configuration names: a key the file creates is CUSTOMER, an
    AWS managed alias AWS; who manages another key only KMS knows."""
    value = ix.resolve_attribute(value)
    if value is None:
        return "none"
    if is_unknown(value):
        return value
    alias = ix.follow(value, KMS_ALIAS)
    if alias is not None:
        value = ix.resolve_attribute(alias.properties.get("TargetKeyId"))
    if ix.follow(value, KMS_KEY) is not None:
        return "CUSTOMER"
    if isinstance(value, str) and (value.startswith("alias/aws/") or ":alias/aws/" in value):
        return "AWS"
    return Unknown(f"{owner}.KmsKeyId: who manages {value if isinstance(value, str) else 'the key'} is known to KMS")


def endpoint_config_state(ix: Index, decl: Declared) -> dict[str, Any]:
    key = decl.properties.get("KmsKeyId")
    return {"EndpointConfigName": _name(decl, "EndpointConfigName"),
            "ProductionVariants": _variants(ix, decl.properties.get("ProductionVariants"),
                                            f"{decl.id}.ProductionVariants"),
            "KmsKeyId": None if key is None else ix.ident(key, f"{decl.id}.KmsKeyId"),
            "KmsKeyManager": key_manager(ix, key, decl.id)}


def endpoint_state(ix: Index, decl: Declared) -> dict[str, Any]:
    config_ref = decl.properties.get("EndpointConfigName")
    config = ix.follow(config_ref, ENDPOINT_CONFIG)
    state: dict[str, Any] = {"EndpointName": _name(decl, "EndpointName"), "EndpointStatus": None,
                             "EndpointConfigName": ix.ident(config_ref, f"{decl.id}.EndpointConfigName")}
    if config is None:
        given = ix.resolve_attribute(config_ref)
        why = Unknown(f"{decl.id}.EndpointConfigName: " + (reason_of(given) if is_unknown(given) else
                                                           "an endpoint configuration not declared in the file"))
        state.update(ProductionVariants=why, ShadowProductionVariants=why, Models=why, VpcConfig=why)
        network.in_vpc(ix, state, why, "")
        return state
    variants = _variants(ix, config.properties.get("ProductionVariants"), f"{config.id}.ProductionVariants")
    shadows = _variants(ix, config.properties.get("ShadowProductionVariants"), f"{config.id}.ShadowProductionVariants")
    state.update(ProductionVariants=variants, ShadowProductionVariants=shadows)
    unknown = next((v for v in (variants, shadows) if is_unknown(v)), None)
    models = unknown if unknown is not None else sorted(
        {v["ModelName"] for v in variants + shadows if v.get("ModelName") is not None and not is_unknown(
            v["ModelName"])})
    if unknown is None:
        unknown = next((v["ModelName"] for v in variants + shadows if is_unknown(v.get("ModelName"))), None)
    subnets: Any = set()
    for name in [] if is_unknown(models) else models:
        model = ix.parsed.resources.get(name)
        if model is None or model.type != MODEL:
            unknown = Unknown(f"{config.id}: model {name!r} is not declared in the file")
            continue
        vpc_config = _vpc_config(ix, model.properties.get("VpcConfig"), model.id)
        found = vpc_config if is_unknown(vpc_config) else pick(vpc_config or {}, "Subnets")
        found = [] if found is None else found
        if is_unknown(found) or any(is_unknown(s) for s in found):
            unknown = found if is_unknown(found) else next(s for s in found if is_unknown(s))
            continue
        subnets |= set(found)
    state["Models"] = models
    listed: Any = unknown if unknown is not None else sorted(subnets)
    state["VpcConfig"] = listed if is_unknown(listed) else ({"Subnets": listed} if listed else None)
    network.in_vpc(ix, state, listed, f"{decl.id} (its models' subnets)")
    return state


def domain_state(ix: Index, decl: Declared) -> dict[str, Any]:
    props = decl.properties
    subnets = ix.idents(props.get("SubnetIds"), f"{decl.id}.SubnetIds")
    user = pick(props, "DefaultUserSettings")
    user = {} if user is None else user
    settings = pick(props, "DomainSettings")
    rstudio = settings.get("RStudioServerProDomainSettings") if isinstance(settings, Mapping) else settings
    role = rstudio.get("DomainExecutionRoleArn") if isinstance(rstudio, Mapping) else rstudio
    state = {"DomainId": decl.id, "DomainName": props.get("DomainName"),
             "AppNetworkAccessType": props.get("AppNetworkAccessType", "PublicInternetOnly"),
             "VpcId": ix.ident(props.get("VpcId"), f"{decl.id}.VpcId"),
             "VpcConfig": network.vpc_config(subnets), "Status": None, "RunningApps": [],
             "AppsState": "none",
             "DefaultSecurityGroups": user if is_unknown(user) else ix.idents(
                 user.get("SecurityGroups"), f"{decl.id}.DefaultUserSettings.SecurityGroups"),
             "RStudioDomainExecutionRole": role if is_unknown(role) else role is not None}
    network.in_vpc(ix, state, subnets, f"{decl.id}.SubnetIds")
    return state


SAGEMAKER_STATES = {NOTEBOOK: notebook_state, MODEL: model_state, ENDPOINT_CONFIG: endpoint_config_state,
                    ENDPOINT: endpoint_state, DOMAIN: domain_state}


def _known(value: Any) -> Any:
    """What is known of a state: the shape `related` reads, unknowns left out."""
    if isinstance(value, Mapping):
        return {k: _known(v) for k, v in value.items() if not is_unknown(v)}
    if isinstance(value, list):
        return [_known(v) for v in value if not is_unknown(v)]
    return value


def _ref(decl: Declared, rtype: str, account: str, region: str) -> ResourceRef:
    return ResourceRef(rtype, decl.id, account, region)


def map_resources(parsed: Parsed, account: str = "", region: str = "") -> list[Mapped]:
    """Every declared resource netguard evaluates, as the Resource a scan of the deployed stack would read."""
    ix = Index(parsed)
    out: list[Mapped] = []
    users = Users()
    environments: dict[str, dict[str, list[str]] | Unknown] = {}
    for rtype, build in SAGEMAKER_STATES.items():
        for decl in ix.of_type(rtype):
            tags = tags_of(decl.properties.get("Tags"), decl.id)
            resource = Resource(_ref(decl, rtype, account, region), "", build(ix, decl),
                                tags if isinstance(tags, dict) else {})
            out.append(Mapped(decl, resource, tags))
            for used, kinds in related(Resource(resource.ref, "", _known(resource.state))):
                users.add(used.resource_id, kinds)
                if used.resource_type == network.VPC and rtype != ENDPOINT_CONFIG:
                    _add_environment(environments, used.resource_id, tags, decl.id)
            if rtype in (NOTEBOOK, MODEL, DOMAIN):
                users.unsure_of(decl.id, resource.state)
    _other_users(ix, users)
    for vpc in ix.of_type(network.VPC):
        open_vpc = users.open.get(network.VPC)  # a SageMaker resource that may be in it, with its tags
        env = open_vpc if open_vpc is not None else environments.get(vpc.id, {})
        state = network.vpc_state(ix, vpc, users.of(vpc.id, network.VPC), env)
        out.append(_mapped(vpc, network.VPC, state, account, region))
    for subnet in ix.of_type(network.SUBNET):
        out.append(_mapped(subnet, network.SUBNET, network.subnet_state(ix, subnet, users.of(
            subnet.id, network.SUBNET)), account, region))
    for group in ix.of_type(network.SECURITY_GROUP):
        state = network.security_group_state(ix, group, users.of(group.id, network.SECURITY_GROUP))
        out.append(_mapped(group, network.SECURITY_GROUP, state, account, region))
    for endpoint in ix.of_type(network.VPC_ENDPOINT):
        state = network.vpc_endpoint_state(ix, endpoint, lambda group_id: users.of(group_id, network.SECURITY_GROUP))
        out.append(_mapped(endpoint, network.VPC_ENDPOINT, state, account, region))
    return out


# Where a SageMaker state names the network resources it uses (what `related` reads), by their type; "*" is
# every item of a list
_USES = {network.SECURITY_GROUP: (("SecurityGroups", "*"), ("DefaultSecurityGroups", "*"),
                                  ("VpcConfig", "SecurityGroupIds", "*")),
         network.SUBNET: (("SubnetId",), ("VpcConfig", "Subnets", "*")),
         network.VPC: (("Subnet", "VpcId"), ("SubnetViews", "*", "VpcId"), ("VpcId",))}


def _open_at(value: Any, path: tuple[str, ...]) -> Unknown | None:
    """The unknown found along a path of a state (an unknown on the way counts), if any."""
    if is_unknown(value):
        return value
    if not path:
        return None
    if path[0] == "*":
        items = value if isinstance(value, list) else []
        return next((found for found in (_open_at(v, path[1:]) for v in items) if found is not None), None)
    return _open_at(value.get(path[0]) if isinstance(value, Mapping) else None, path[1:])


class Users:
    """What kinds of users each declared network resource has, as a scan's hints and network interfaces tell
    (`UsedBy`, `AttachedTo`). When a user's reference is unknown, it may use any of them: their lists end with
    that Unknown, so a control scoped on them is NOT_APPLICABLE unless a known user settles it."""

    def __init__(self) -> None:
        self.kinds: dict[str, set[str]] = {}
        self.open: dict[str, Unknown] = {}  # network type -> why some user of that type is unknown

    def add(self, resource_id: str, kinds: set[str]) -> None:
        self.kinds.setdefault(resource_id, set()).update(kinds)

    def unsure(self, network_type: str, why: Unknown) -> None:
        self.open.setdefault(network_type, why)

    def unsure_of(self, owner: str, state: Mapping[str, Any]) -> None:
        for network_type, paths in _USES.items():
            found = next((u for u in (_open_at(state, path) for path in paths) if u is not None), None)
            if found is not None:
                self.unsure(network_type, Unknown(f"what {owner} uses: {reason_of(found)}"))

    def of(self, resource_id: str, network_type: str) -> list[Any]:
        why = self.open.get(network_type)
        return sorted(self.kinds.get(resource_id, set())) + ([why] if why is not None else [])


def _mapped(decl: Declared, rtype: str, state: dict[str, Any], account: str, region: str) -> Mapped:
    tags = tags_of(decl.properties.get("Tags"), decl.id)
    return Mapped(decl, Resource(_ref(decl, rtype, account, region), "", state,
                                 tags if isinstance(tags, dict) else {}), tags)


def _add_environment(environments: dict[str, Any], vpc_id: str, tags: Any, owner: str) -> None:
    """Collector._vpc_environments: Environment tag value -> the SageMaker resources in the VPC with it."""
    if is_unknown(environments.get(vpc_id)):
        return
    env = tags if is_unknown(tags) else tags.get("Environment")
    if is_unknown(env):
        environments[vpc_id] = Unknown(f"{owner}'s Environment tag: {reason_of(env)}")
        return
    environments.setdefault(vpc_id, {}).setdefault(env or "(untagged)", []).append(owner)


def _other_users(ix: Index, users: Users) -> None:
    """What else the file puts in its subnets and groups, as their network interfaces tell a scan
    (reads.classify_eni): interface endpoints, NAT gateways, Lambda functions."""
    def add(value: Any, kind: str, owner: str, network_type: str) -> None:
        if value is None:
            return
        ids = ix.idents(value if isinstance(value, list) or is_unknown(value) else [value], owner)
        for found in [ids] if is_unknown(ids) else ids:
            if is_unknown(found):
                users.unsure(network_type, Unknown(f"what {owner} uses: {reason_of(found)}"))
            elif isinstance(found, str):
                users.add(found, {kind})

    for endpoint in ix.of_type(network.VPC_ENDPOINT):
        kind = network.endpoint_type(endpoint)
        if is_unknown(kind) or kind == "Interface":
            for prop, network_type in (("SubnetIds", network.SUBNET), ("SecurityGroupIds", network.SECURITY_GROUP),
                                       ("VpcId", network.VPC)):
                value = endpoint.properties.get(prop)
                add(Unknown(f"{endpoint.id}.VpcEndpointType: {reason_of(kind)}") if is_unknown(kind) and
                    value is not None else value, "vpc-endpoint", endpoint.id, network_type)
    for nat in ix.of_type("AWS::EC2::NatGateway"):
        add(nat.properties.get("SubnetId"), "other", nat.id, network.SUBNET)
    for function in [d for t in LAMBDA_TYPES for d in ix.of_type(t)]:
        config = function.properties.get("VpcConfig")
        if isinstance(config, Mapping):
            add(config.get("SubnetIds"), "other", function.id, network.SUBNET)
            add(config.get("SecurityGroupIds"), "other", function.id, network.SECURITY_GROUP)


def evaluate_file(parsed: Parsed, controls: list[Control], modes: Mapping[str, str] | None = None,
                  account: str = "", region: str = "") -> list[tuple[Finding, Declared]]:
    """evaluate.evaluate over the mapped resources, each verdict through `evaluate_known`; a resource the
    file creates only under a condition it leaves open is NOT_APPLICABLE for every control, with why."""
    modes = modes or {}
    active = [c for c in controls if modes.get(c.id, c.mode) != "off"]
    findings = []
    for item in map_resources(parsed, account, region):
        for control in active:
            if item.resource.ref.resource_type not in control.resource_types:
                continue
            status: str
            evidence: Mapping[str, Any]
            targets: tuple[str, ...]
            if item.decl.condition is not None:
                status, evidence, targets = "NOT_APPLICABLE", {
                    "reason": f"{UNKNOWN}: {reason_of(item.decl.condition)}"}, ()
            else:
                status, evidence, targets = evaluate_known(control, {**item.resource.state, "Tags": item.tags})
            findings.append((Finding(control, item.resource, status, evidence, targets), item.decl))
    return findings


__all__ = ["Mapped", "Ref", "evaluate_file", "map_resources"]
