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
        why = Unknown(f"{decl.id}.EndpointConfigName: an endpoint configuration not declared in the file")
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
        found = vpc_config if is_unknown(vpc_config) else pick(vpc_config or {}, "Subnets") or []
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
    user = pick(props, "DefaultUserSettings") or {}
    settings = pick(props, "DomainSettings") or {}
    rstudio = settings.get("RStudioServerProDomainSettings") if isinstance(settings, Mapping) else settings
    state = {"DomainId": decl.id, "DomainName": props.get("DomainName"),
             "AppNetworkAccessType": props.get("AppNetworkAccessType", "PublicInternetOnly"),
             "VpcId": ix.ident(props.get("VpcId"), f"{decl.id}.VpcId"),
             "VpcConfig": {"Subnets": subnets} if subnets else None, "Status": None, "RunningApps": [],
             "AppsState": "none",
             "DefaultSecurityGroups": user if is_unknown(user) else ix.idents(
                 user.get("SecurityGroups"), f"{decl.id}.DefaultUserSettings.SecurityGroups"),
             "RStudioDomainExecutionRole": rstudio if is_unknown(rstudio) else bool(
                 (rstudio or {}).get("DomainExecutionRoleArn"))}
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
    users: dict[str, set[str]] = {}  # declared network resource id -> kinds of users
    environments: dict[str, dict[str, list[str]] | Unknown] = {}
    for rtype, build in SAGEMAKER_STATES.items():
        for decl in ix.of_type(rtype):
            tags = tags_of(decl.properties.get("Tags"), decl.id)
            resource = Resource(_ref(decl, rtype, account, region), "", build(ix, decl),
                                tags if isinstance(tags, dict) else {})
            out.append(Mapped(decl, resource, tags))
            for used, kinds in related(Resource(resource.ref, "", _known(resource.state))):
                users.setdefault(used.resource_id, set()).update(kinds)
                if used.resource_type == network.VPC and rtype != ENDPOINT_CONFIG:
                    _add_environment(environments, used.resource_id, tags, decl.id)
    _other_users(ix, users)
    for vpc in ix.of_type(network.VPC):
        env = environments.get(vpc.id, {})
        state = network.vpc_state(ix, vpc, users.get(vpc.id, set()), env)
        out.append(_mapped(vpc, network.VPC, state, account, region))
    for subnet in ix.of_type(network.SUBNET):
        out.append(_mapped(subnet, network.SUBNET, network.subnet_state(ix, subnet, users.get(subnet.id, set())),
                           account, region))
    for group in ix.of_type(network.SECURITY_GROUP):
        state = network.security_group_state(ix, group, users.get(group.id, set()))
        out.append(_mapped(group, network.SECURITY_GROUP, state, account, region))
    for endpoint in ix.of_type(network.VPC_ENDPOINT):
        state = network.vpc_endpoint_state(ix, endpoint, users)
        out.append(_mapped(endpoint, network.VPC_ENDPOINT, state, account, region))
    return out


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


def _other_users(ix: Index, users: dict[str, set[str]]) -> None:
    """What else the file puts in its subnets and groups, as their network interfaces tell a scan
    (reads.classify_eni): interface endpoints, NAT gateways, Lambda functions."""
    def add(value: Any, kind: str, owner: str) -> None:
        ids = ix.idents(value if isinstance(value, list) else [value], owner)
        for found in [] if is_unknown(ids) else ids:
            if isinstance(found, str):
                users.setdefault(found, set()).add(kind)

    for endpoint in ix.of_type(network.VPC_ENDPOINT):
        if network.endpoint_type(endpoint) == "Interface":
            for prop in ("SubnetIds", "SecurityGroupIds", "VpcId"):
                add(endpoint.properties.get(prop), "vpc-endpoint", endpoint.id)
    for nat in ix.of_type("AWS::EC2::NatGateway"):
        add(nat.properties.get("SubnetId"), "other", nat.id)
    for function in [d for t in LAMBDA_TYPES for d in ix.of_type(t)]:
        config = function.properties.get("VpcConfig")
        if isinstance(config, Mapping):
            add(config.get("SubnetIds"), "other", function.id)
            add(config.get("SecurityGroupIds"), "other", function.id)


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
