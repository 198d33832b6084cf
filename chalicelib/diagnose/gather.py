"""Read what a diagnosis needs with the engine's own reads: the SageMaker resource, its models, subnets,
security groups and VPC through the collectors (graph.Collector, as a scan reads them), then the VPC's
endpoints with their groups and subnets the same way. Only what the collectors do not read is read here:
the DHCP option set's DNS servers (DescribeDhcpOptions) and the addresses of S3's AWS-managed prefix list
(GetManagedPrefixListEntries). Every call is a read.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..aws import AWS_ERRORS, Clients, error_code, error_message
from ..checks_network import live_endpoint
from ..graph import Collector
from ..model import (
    DOMAIN,
    ENDPOINT,
    MODEL,
    NOTEBOOK,
    PROCESSING_JOB,
    SECURITY_GROUP,
    SUBNET,
    TRAINING_JOB,
    TRANSFORM_JOB,
    TUNING_JOB,
    VPC,
    VPC_ENDPOINT,
    Resource,
    ResourceRef,
)
from ..resources import get as resource_type
from .model import NEEDS, Workload
from .reach import Network
from .rules import AMAZON_DNS

# RESOURCE as `kind/name`: the kinds are the ARN resource types, with short forms.
KINDS = {"notebook": NOTEBOOK, "notebook-instance": NOTEBOOK, "training-job": TRAINING_JOB,
         "processing-job": PROCESSING_JOB, "transform-job": TRANSFORM_JOB, "tuning-job": TUNING_JOB,
         "hyper-parameter-tuning-job": TUNING_JOB, "endpoint": ENDPOINT, "domain": DOMAIN}
SERVICE_RE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\Z")


class UsageError(Exception):
    """RESOURCE names no known kind, no valid name, or no resource that exists."""


class ReadError(Exception):
    """What the diagnosis needs could not be read (the message says what and why)."""


def parse_resource(spec: str) -> tuple[str, str, str | None, str | None]:
    """`training-job/name` or a SageMaker ARN -> (resource type, id, region or None, account or None)."""
    region = account = None
    if spec.startswith("arn:"):
        parts = spec.split(":", 5)
        if len(parts) != 6 or parts[2] != "sagemaker" or "/" not in parts[5]:
            raise UsageError(f"{spec!r} is not the ARN of a SageMaker notebook instance, job, endpoint or domain")
        region, account, spec = parts[3] or None, parts[4] or None, parts[5]
    kind, _, name = spec.partition("/")
    rtype = KINDS.get(kind)
    if rtype is None:
        raise UsageError(f"unknown resource kind {kind!r} in {spec!r}: use one of {', '.join(sorted(KINDS))} "
                         f"(e.g. training-job/NAME, notebook/NAME, endpoint/NAME, domain/d-xxxxxxxxxxxx) or an ARN")
    known = resource_type(rtype)
    if known is None or not known.id_pattern.match(name):
        raise UsageError(f"{name!r} is not a valid {kind} name")
    return rtype, name, region, account


def label(ref: ResourceRef) -> str:
    kind = next(k for k, t in KINDS.items() if t == ref.resource_type)
    return f"{kind}/{ref.resource_id}"


def destinations(rtype: str, policy_services: Sequence[str], wanted: Sequence[str] | None) -> tuple[str, ...]:
    """What the workload calls among the policy's essential endpoints, or the services asked for."""
    if wanted:
        bad = [s for s in wanted if not SERVICE_RE.match(s)]
        if bad:
            raise UsageError(f"not a service name: {', '.join(bad)} (e.g. s3, sts, ecr.api, sagemaker.api)")
        return tuple(dict.fromkeys(wanted))
    return tuple(s for s in NEEDS[rtype] if s in policy_services)


def _workload(resource: Resource, resources: Iterable[Resource], needs: tuple[str, ...]) -> Workload:
    state, rtype = resource.state, resource.ref.resource_type
    vpc_config = state.get("VpcConfig") or {}
    subnets, groups = list(vpc_config.get("Subnets") or []), list(vpc_config.get("SecurityGroupIds") or [])
    views = state.get("SubnetViews") or []
    vpc_id = next((v.get("VpcId") for v in views if v), None)
    status = state.get("JobStatus") or state.get("EndpointStatus") or state.get("Status")
    elsewhere = None if subnets else "no VpcConfig: it runs in SageMaker's network"
    if rtype == NOTEBOOK:
        subnets = [state["SubnetId"]] if state.get("SubnetId") else []
        groups, vpc_id = list(state.get("SecurityGroups") or []), (state.get("Subnet") or {}).get("VpcId")
        status = state.get("NotebookInstanceStatus")
        elsewhere = ("DirectInternetAccess Enabled: internet through SageMaker's VPC"
                     if state.get("DirectInternetAccess") == "Enabled" else None if subnets else "no subnet")
    elif rtype == ENDPOINT:  # its models' groups (the configuration's VpcConfig names subnets only)
        models = [r for r in resources if r.ref.resource_type == MODEL and r.ref.resource_id in state.get("Models", [])]
        groups = sorted({g for m in models for g in ((m.state.get("VpcConfig") or {}).get("SecurityGroupIds") or [])})
    elif rtype == DOMAIN:
        groups, vpc_id = list(state.get("DefaultSecurityGroups") or []), state.get("VpcId") or vpc_id
        if state.get("AppNetworkAccessType") == "PublicInternetOnly":
            elsewhere = "AppNetworkAccessType PublicInternetOnly: internet through SageMaker's VPC"
    return Workload(label(resource.ref), rtype, resource.arn, status, vpc_id, tuple(subnets), tuple(groups),
                    elsewhere, bool(state.get("EnableNetworkIsolation")), needs)


def _collect(collector: Collector, refs: list[ResourceRef]) -> list[Resource]:
    found = collector.collect(refs)
    if found.errors:
        raise ReadError("; ".join(f"{ref.resource_type} {ref.resource_id}: {error}" for ref, error in found.errors))
    return found.resources


def read(clients: Clients, ref: ResourceRef, needs: tuple[str, ...]) -> tuple[Workload, Network | None]:
    """The workload and the network around it. UsageError when the resource does not exist."""
    collector = Collector(clients, types={ref.resource_type, MODEL, SUBNET, SECURITY_GROUP, VPC, VPC_ENDPOINT})
    resources = _collect(collector, [ref])
    resource = next((r for r in resources if r.ref == ref), None)
    if resource is None:
        raise UsageError(f"{label(ref)} not found in account {ref.account}, region {ref.region}")
    workload = _workload(resource, resources, needs)
    if workload.sagemaker_network or not workload.vpc_id:
        return workload, None
    lookups = collector.lookups(ref.account, ref.region)
    try:
        raw = {e["VpcEndpointId"]: e for e in lookups.vpc_endpoints(workload.vpc_id) if live_endpoint(e)}
        refs = [ResourceRef(VPC_ENDPOINT, e, ref.account, ref.region) for e in raw]
        refs += [ResourceRef(SECURITY_GROUP, g["GroupId"], ref.account, ref.region)
                 for e in raw.values() for g in e.get("Groups", [])]
        refs += [ResourceRef(SUBNET, s, ref.account, ref.region) for e in raw.values() for s in e.get("SubnetIds", [])]
        # the workload's own groups, where its type does not say it uses them (a domain's default groups)
        refs += [ResourceRef(SECURITY_GROUP, g, ref.account, ref.region) for g in workload.groups]
        resources += _collect(collector, refs)
        return workload, _network(lookups, workload, resources, raw)
    except AWS_ERRORS as exc:
        raise ReadError(f"{error_code(exc)}: {error_message(exc)}") from exc


def _network(lookups: Any, w: Workload, resources: list[Resource], raw: dict[str, Any]) -> Network:
    by_type: dict[str, dict[str, Resource]] = {}
    for r in resources:
        by_type.setdefault(r.ref.resource_type, {})[r.ref.resource_id] = r
    vpc_state = by_type.get(VPC, {}).get(str(w.vpc_id))
    vpc_raw = lookups.vpc(w.vpc_id) or {}
    if vpc_state is None:
        raise ReadError(f"VPC {w.vpc_id} of {w.resource} could not be read")
    dhcp_id = vpc_raw.get("DhcpOptionsId")
    vpc = {"VpcId": w.vpc_id, "CidrBlocks": list(vpc_state.state.get("CidrBlocks") or []),
           "EnableDnsSupport": bool(vpc_state.state.get("EnableDnsSupport")),
           "EnableDnsHostnames": bool(vpc_state.state.get("EnableDnsHostnames")),
           "DhcpOptionsId": dhcp_id, "DomainNameServers": _dns_servers(lookups, dhcp_id)}
    subnets: dict[str, dict[str, Any]] = {}
    for sid, subnet in by_type.get(SUBNET, {}).items():
        table = lookups.route_table_for_subnet(sid, w.vpc_id) or {}
        subnets[sid] = {"SubnetId": sid, "CidrBlock": (lookups.subnet(sid) or {}).get("CidrBlock"),
                        "AvailabilityZone": subnet.state.get("AvailabilityZone"),
                        "RouteTable": {"RouteTableId": table.get("RouteTableId"), "Routes": table.get("Routes", [])},
                        "NetworkAcl": subnet.state.get("NetworkAcl") or {}}
    rules = {gid: list(g.state.get("Rules") or []) for gid, g in by_type.get(SECURITY_GROUP, {}).items()}
    endpoints = tuple({**{k: e.state.get(k) for k in ("VpcEndpointId", "Service", "VpcEndpointType", "State",
                                                      "PrivateDnsEnabled", "PolicyDocument", "PrivateDnsConflict")},
                       "SubnetIds": list((e.state.get("VpcConfig") or {}).get("Subnets") or []),
                       "Groups": [g["GroupId"] for g in e.state.get("SecurityGroups") or []],
                       "RouteTableIds": list(raw.get(eid, {}).get("RouteTableIds") or [])}
                      for eid, e in sorted(by_type.get(VPC_ENDPOINT, {}).items()))
    lists = sorted({r["DestinationPrefixListId"] for s in subnets.values() for r in s["RouteTable"]["Routes"]
                    if r.get("DestinationPrefixListId") and str(r.get("GatewayId", "")).startswith("vpce-")})
    prefix_lists = {pl: tuple(sorted(entry["Cidr"] for page in lookups.ec2.get_paginator(
        "get_managed_prefix_list_entries").paginate(PrefixListId=pl) for entry in page.get("Entries", [])
        if entry.get("Cidr"))) for pl in lists}
    return Network(lookups.region, vpc, subnets, rules, endpoints, prefix_lists)


def _dns_servers(lookups: Any, dhcp_id: str | None) -> list[str]:
    """The domain-name-servers of the VPC's DHCP option set ("default" or none: AmazonProvidedDNS)."""
    if not dhcp_id or dhcp_id == "default":
        return [AMAZON_DNS]
    sets = lookups.ec2.describe_dhcp_options(DhcpOptionsIds=[dhcp_id]).get("DhcpOptions", [])
    for config in (sets[0].get("DhcpConfigurations", []) if sets else []):
        if config.get("Key") == "domain-name-servers":
            return [str(v.get("Value")) for v in config.get("Values", []) if v.get("Value")]
    return []
