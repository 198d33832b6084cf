"""Collect: read the current state of referenced resources (read-only describe/get calls).

Each resource becomes plain data (Resource.state) that the checks read. Lookups shared by many
resources (subnets, route tables, VPC CIDRs, security groups, their users) go through `Lookups`,
which caches them for the run: per-event work depends on the resources the event names, never on
the size of the account (no list-everything to find one resource).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from botocore.exceptions import ClientError

from .aws import AWS_ERRORS, Clients, concurrently, error_code, error_message
from .checks import live_endpoint
from .model import (
    DOMAIN,
    ENDPOINT,
    ENDPOINT_CONFIG,
    FLOW_LOG,
    JOB_TYPES,
    MODEL,
    NOTEBOOK,
    PROCESSING_JOB,
    ROUTE_TABLE,
    SAGEMAKER_TYPES,
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

log = logging.getLogger("netguard.collect")

NOT_FOUND_CODES = {
    "InvalidGroup.NotFound", "InvalidGroupId.Malformed", "InvalidSubnetID.NotFound",
    "InvalidVpcID.NotFound", "InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound",
    "InvalidRouteTableID.NotFound", "InvalidNetworkAclID.NotFound", "InvalidPrefixListID.NotFound",
    "ResourceNotFound",
}

# Kinds of users a security group can have (SG.1 / SG.2 scope on `AttachedTo`).
USED_BY_NOTEBOOK = "notebook"
USED_BY_SAGEMAKER = "sagemaker"
USED_BY_VPC_ENDPOINT = "vpc-endpoint"
USED_BY_TRAINING = "training"  # training, processing, tuning and transform jobs
USED_BY_ENDPOINT = "endpoint"  # models served by endpoints
USED_BY_STUDIO = "studio"
USED_BY_OTHER = "other"


def _missing(exc: ClientError) -> bool:
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return True
    # SageMaker answers ValidationException: "RecordNotFound" for a missing notebook, 'Could not find
    # model "arn:..."' (endpoint configuration, endpoint) for the hosting resources.
    message = error_message(exc).lower()
    return code == "ValidationException" and any(words in message for words in ("recordnotfound", "not found",
                                                                                  "could not find"))


def classify_eni(eni: dict[str, Any]) -> set[str]:
    """What kind of resource uses an ENI, from the fields AWS sets on managed interfaces."""
    if eni.get("InterfaceType") == "vpc_endpoint":
        return {USED_BY_VPC_ENDPOINT}
    text = " ".join(str(eni.get(k, "")) for k in ("Description", "RequesterId")).lower()
    if "sagemaker" not in text:
        return {USED_BY_OTHER}
    # The kind of SageMaker user, from the interface description (a heuristic: the resources that name
    # the group or subnet say it for sure, and are merged in as hints).
    for words, kind in ((("notebook",), USED_BY_NOTEBOOK), (("training", "processing", "transform", "tuning"),
                        USED_BY_TRAINING), (("endpoint",), USED_BY_ENDPOINT), (("studio", "domain"), USED_BY_STUDIO)):
        if any(w in text for w in words):
            return {USED_BY_SAGEMAKER, kind}
    return {USED_BY_SAGEMAKER}


def normalize_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out = {k: rule[k] for k in ("SecurityGroupRuleId", "GroupId", "IsEgress", "IpProtocol", "FromPort",
                                "ToPort", "CidrIpv4", "CidrIpv6", "PrefixListId", "Description") if k in rule}
    referenced = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    if referenced:
        out["ReferencedGroupId"] = referenced
    return out


class Lookups:
    """Shared, cached reads for one account and region during one run."""

    def __init__(self, clients: Clients, account: str, region: str, workers: int = 1) -> None:
        self.account, self.region, self.clients = account, region, clients
        # Every answer cached here was read at or after this time (what a claim compares with: see
        # ledger.claim_open); a sweep's lookups live for its whole task.
        self.created_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.workers = workers  # concurrent calls: prime(), together(), vpc_attributes()
        self._subnets: dict[str, dict[str, Any] | None] = {}
        self._route_tables: dict[str, dict[str, Any] | None] = {}
        self._main_tables: dict[str, dict[str, Any] | None] = {}
        self._vpcs: dict[str, dict[str, Any] | None] = {}
        self._sg_users: dict[str, set[str]] = {}
        self._groups: dict[str, dict[str, Any] | None] = {}
        self._rules: dict[str, list[dict[str, Any]]] = {}
        self._subnet_users: dict[str, set[str]] = {}
        self._flow_logs: dict[str, list[dict[str, Any]]] = {}
        self._vpc_attributes: dict[str, dict[str, bool]] = {}
        self._models: dict[str, dict[str, Any] | None] = {}
        self._vpc_users: dict[str, set[str]] = {}
        self._endpoints_by_vpc: dict[str, list[dict[str, Any]]] = {}
        self._acls: dict[str, dict[str, Any] | None] = {}
        self._zones: dict[str, list[dict[str, Any]]] = {}
        self._prefix_lists: dict[str, list[str] | None] = {}
        self._primed = False
        self._bulk_tags: dict[str, dict[str, str]] | None = None  # SageMaker ARN -> tags (scan mode)

    @property
    def ec2(self) -> Any:
        return self.clients.client("ec2", self.region, self.account)

    @property
    def sagemaker(self) -> Any:
        return self.clients.client("sagemaker", self.region, self.account)

    def together(self, *reads: Callable[[], Any]) -> None:
        """Make a resource's independent reads at once: on an event each is a round trip, otherwise
        made one after another. Their answers land in the caches the collector then reads. In a
        primed run (sweep, scan) they are mostly cache hits and resources are read concurrently
        already: in turn. A read that fails here is left to the collector, which makes it again in its
        own order and handles the failure as it always does (a deleted VPC is "missing", not an error)."""
        def quietly(read: Callable[[], Any]) -> None:
            try:
                read()
            except AWS_ERRORS:
                pass

        concurrently(quietly, reads, 1 if self._primed else self.workers, "netguard-lookup")

    def _pages(self, operation: str, key: str, filter_name: str | None = None,
               value: str | None = None) -> Iterable[dict[str, Any]]:
        """Every item of a paginated EC2 describe call, optionally filtered on one value."""
        params = {"Filters": [{"Name": filter_name, "Values": [value]}]} if filter_name else {}
        for page in self.ec2.get_paginator(operation).paginate(**params):
            yield from page.get(key, [])

    def prime(self) -> dict[str, list[str]]:
        """Scan mode: read the region's shared network state in a few paginated calls, so that
        collecting each resource afterwards costs no network lookup. Returns the ids by type.
        The reads are independent: they are made concurrently, then put together."""
        reads: list[Callable[[], Any]] = [
            lambda: list(self._pages("describe_subnets", "Subnets")),
            lambda: list(self._pages("describe_route_tables", "RouteTables")),
            lambda: list(self._pages("describe_vpcs", "Vpcs")),
            lambda: list(self._pages("describe_security_groups", "SecurityGroups")),
            lambda: list(self._pages("describe_security_group_rules", "SecurityGroupRules")),
            lambda: list(self._pages("describe_network_interfaces", "NetworkInterfaces")),
            lambda: list(self._pages("describe_vpc_endpoints", "VpcEndpoints")),
            lambda: list(self._pages("describe_network_acls", "NetworkAcls")),
            lambda: list(self._pages("describe_flow_logs", "FlowLogs")),
            self._read_sagemaker_tags]
        answers = concurrently(lambda read: read(), reads, self.workers, "netguard-prime")
        subnets, tables, vpcs, groups, rules, enis, endpoints, acls, flow_logs, self._bulk_tags = answers
        for subnet in subnets:
            self._subnets[subnet["SubnetId"]] = subnet
        for table in tables:
            for assoc in table.get("Associations", []):
                if assoc.get("SubnetId"):
                    self._route_tables[assoc["SubnetId"]] = table
                if assoc.get("Main"):
                    self._main_tables[table["VpcId"]] = table
        for vpc in vpcs:
            self._vpcs[vpc["VpcId"]] = vpc
        for group in groups:
            self._groups[group["GroupId"]] = group
            self._rules[group["GroupId"]] = []
            self._sg_users[group["GroupId"]] = set()
        for rule in rules:
            self._rules.setdefault(rule["GroupId"], []).append(normalize_rule(rule))
        for subnet_id in self._subnets:
            self._subnet_users[subnet_id] = set()
        for vpc_id in self._vpcs:
            self._vpc_users[vpc_id] = set()
        for eni in enis:
            for group in eni.get("Groups", []):
                self._sg_users.setdefault(group["GroupId"], set()).update(classify_eni(eni))
            if eni.get("SubnetId"):
                self._subnet_users.setdefault(eni["SubnetId"], set()).update(classify_eni(eni))
            if eni.get("VpcId"):
                self._vpc_users.setdefault(eni["VpcId"], set()).update(classify_eni(eni))
        for vpc_id in self._vpcs:
            self._flow_logs[vpc_id] = []
            self._endpoints_by_vpc[vpc_id] = []
        for endpoint in endpoints:
            self._endpoints_by_vpc.setdefault(endpoint["VpcId"], []).append(endpoint)
        for acl in acls:
            for assoc in acl.get("Associations", []):
                self._acls[assoc["SubnetId"]] = acl
        for flow_log in flow_logs:
            self._flow_logs.setdefault(flow_log.get("ResourceId", ""), []).append(_flow_log_view(flow_log))
        for subnet_id in self._subnets:
            if subnet_id not in self._route_tables:
                self._route_tables[subnet_id] = self._main_tables.get(self._subnets[subnet_id]["VpcId"])
        self._primed = True
        live = sorted(e["VpcEndpointId"] for es in self._endpoints_by_vpc.values() for e in es if live_endpoint(e))
        return {VPC: sorted(self._vpcs), SUBNET: sorted(self._subnets), VPC_ENDPOINT: live,
                SECURITY_GROUP: sorted(self._groups)}

    def _read_sagemaker_tags(self) -> dict[str, dict[str, str]] | None:
        """Scan mode: the tags of every tagged SageMaker resource of the region, 100 per call (the
        Resource Groups Tagging API), instead of one ListTags per resource. None when it cannot be
        read (each resource's ListTags is used then)."""
        tagging = self.clients.client("resourcegroupstaggingapi", self.region, self.account)
        found: dict[str, dict[str, str]] = {}
        try:
            for page in tagging.get_paginator("get_resources").paginate(ResourceTypeFilters=["sagemaker"],
                                                                         ResourcesPerPage=100):
                for item in page.get("ResourceTagMappingList", []):
                    found[item["ResourceARN"]] = _tags_from_list(item.get("Tags"))
        except AWS_ERRORS as exc:
            log.warning("tags of %s/%s not read in bulk (%s): one ListTags per resource instead",
                        self.account, self.region, error_code(exc))
            return None
        return found

    def bulk_tags(self, arn: str) -> dict[str, str] | None:
        return self._bulk_tags.get(arn) if self._bulk_tags is not None else None

    @staticmethod
    def _describe_one(describe: Callable[[], dict[str, Any]], key: str) -> dict[str, Any] | None:
        """The one item an EC2 describe-by-id returns, None when it does not exist."""
        try:
            found = describe()[key]
        except ClientError as exc:
            if not _missing(exc):
                raise
            return None
        return found[0] if found else None

    def security_group(self, group_id: str) -> dict[str, Any] | None:
        if group_id not in self._groups and not self._primed:
            self._groups[group_id] = self._describe_one(
                lambda: self.ec2.describe_security_groups(GroupIds=[group_id]), "SecurityGroups")
        return self._groups.get(group_id)

    def security_group_rules(self, group_id: str) -> list[dict[str, Any]]:
        if group_id not in self._rules:
            self._rules[group_id] = [normalize_rule(r) for r in self._pages(
                "describe_security_group_rules", "SecurityGroupRules", "group-id", group_id)]
        return sorted(self._rules[group_id], key=lambda r: r.get("SecurityGroupRuleId", ""))

    def subnet(self, subnet_id: str) -> dict[str, Any] | None:
        if subnet_id not in self._subnets and not self._primed:
            self._subnets[subnet_id] = self._describe_one(
                lambda: self.ec2.describe_subnets(SubnetIds=[subnet_id]), "Subnets")
        return self._subnets.get(subnet_id)

    def route_table_for_subnet(self, subnet_id: str, vpc_id: str) -> dict[str, Any] | None:
        """The explicitly associated route table, else the VPC's main table."""
        if subnet_id not in self._route_tables:
            tables = self.ec2.describe_route_tables(
                Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
            self._route_tables[subnet_id] = tables[0] if tables else self.main_route_table(vpc_id)
        return self._route_tables[subnet_id]

    def main_route_table(self, vpc_id: str) -> dict[str, Any] | None:
        if vpc_id not in self._main_tables:
            tables = self.ec2.describe_route_tables(Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "association.main", "Values": ["true"]},
            ])["RouteTables"]
            self._main_tables[vpc_id] = tables[0] if tables else None
        return self._main_tables[vpc_id]

    def vpc(self, vpc_id: str) -> dict[str, Any] | None:
        if vpc_id not in self._vpcs and not self._primed:
            self._vpcs[vpc_id] = self._describe_one(lambda: self.ec2.describe_vpcs(VpcIds=[vpc_id]), "Vpcs")
        return self._vpcs.get(vpc_id)

    def vpc_cidrs(self, vpc_id: str) -> list[str]:
        vpc = self.vpc(vpc_id)
        return _vpc_cidrs(vpc) if vpc else []

    def subnet_view(self, subnet_id: str) -> dict[str, Any] | None:
        """Subnet facts the checks need: VPC, AZ, public-IP mapping and its effective route table."""
        subnet = self.subnet(subnet_id)
        if subnet is None:
            return None
        table = self.route_table_for_subnet(subnet_id, subnet["VpcId"]) or {}
        return {
            "SubnetId": subnet_id,
            "VpcId": subnet["VpcId"],
            "AvailabilityZone": subnet.get("AvailabilityZone"),
            "MapPublicIpOnLaunch": bool(subnet.get("MapPublicIpOnLaunch")),
            "RouteTable": {
                "RouteTableId": table.get("RouteTableId"),
                "Routes": [
                    {k: r[k] for k in ("DestinationCidrBlock", "DestinationIpv6CidrBlock", "GatewayId",
                                        "NatGatewayId", "State") if k in r}
                    for r in table.get("Routes", [])
                ],
            },
        }

    def _users(self, cache: dict[str, set[str]], filter_name: str, value: str) -> set[str]:
        """Kinds of resources whose network interfaces match one filter (one paginated call, cached)."""
        if value not in cache and not self._primed:
            cache[value] = {kind for eni in self._pages("describe_network_interfaces", "NetworkInterfaces",
                                                        filter_name, value) for kind in classify_eni(eni)}
        return cache.get(value, set())

    def subnet_users(self, subnet_id: str) -> set[str]:
        return self._users(self._subnet_users, "subnet-id", subnet_id)

    def vpc_users(self, vpc_id: str) -> set[str]:
        return self._users(self._vpc_users, "vpc-id", vpc_id)

    def vpc_endpoints(self, vpc_id: str) -> list[dict[str, Any]]:
        if vpc_id not in self._endpoints_by_vpc:
            self._endpoints_by_vpc[vpc_id] = list(self._pages("describe_vpc_endpoints", "VpcEndpoints", "vpc-id",
                                                              vpc_id))
        return self._endpoints_by_vpc[vpc_id]

    def vpc_endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        for endpoints in self._endpoints_by_vpc.values():
            for endpoint in endpoints:
                if endpoint["VpcEndpointId"] == endpoint_id:
                    return endpoint
        if self._primed:
            return None
        return self._describe_one(lambda: self.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]),
                                  "VpcEndpoints")

    def vpc_subnets(self, vpc_id: str) -> list[str]:
        if self._primed:
            return sorted(s for s, v in self._subnets.items() if v and v.get("VpcId") == vpc_id)
        subnets = self.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
        for subnet in subnets:
            self._subnets.setdefault(subnet["SubnetId"], subnet)
        return sorted(s["SubnetId"] for s in subnets)

    def route_table_subnets(self, route_table_id: str) -> list[str]:
        """The subnets whose traffic a route table routes: its associations, or for the VPC's main table,
        every subnet of the VPC without an explicit association (bounded by the VPC, not the account)."""
        table = self._describe_one(lambda: self.ec2.describe_route_tables(RouteTableIds=[route_table_id]),
                                   "RouteTables")
        if table is None:
            return []
        subnets = [a["SubnetId"] for a in table.get("Associations", []) if a.get("SubnetId")]
        if any(a.get("Main") for a in table.get("Associations", [])):
            vpc = [{"Name": "vpc-id", "Values": [table["VpcId"]]}]
            explicit = {a["SubnetId"] for t in self.ec2.describe_route_tables(Filters=vpc)["RouteTables"]
                        for a in t.get("Associations", []) if a.get("SubnetId")}
            subnets += [s["SubnetId"] for s in self.ec2.describe_subnets(Filters=vpc)["Subnets"]
                        if s["SubnetId"] not in explicit]
        return sorted(set(subnets))

    def network_acl(self, subnet_id: str) -> dict[str, Any] | None:
        """The network ACL associated with the subnet (every subnet has exactly one)."""
        if subnet_id not in self._acls:
            acls = self.ec2.describe_network_acls(
                Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["NetworkAcls"]
            self._acls[subnet_id] = acls[0] if acls else None
        return self._acls[subnet_id]

    def vpc_attributes(self, vpc_id: str) -> dict[str, bool]:
        """enableDnsSupport and enableDnsHostnames (one call each: the API takes one attribute)."""
        if vpc_id not in self._vpc_attributes:
            def read(attribute: tuple[str, str]) -> bool:
                answer = self.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute[0])
                return bool(answer.get(attribute[1], {}).get("Value"))

            attributes = (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames"))
            values = concurrently(read, attributes, self.workers, "netguard-lookup")
            self._vpc_attributes[vpc_id] = {key: value for (_, key), value in zip(attributes, values)}
        return self._vpc_attributes[vpc_id]

    def flow_logs(self, vpc_id: str) -> list[dict[str, Any]]:
        if vpc_id not in self._flow_logs:
            self._flow_logs[vpc_id] = [_flow_log_view(f) for f in self._pages(
                "describe_flow_logs", "FlowLogs", "resource-id", vpc_id)]
        return self._flow_logs[vpc_id]

    def model(self, name: str) -> dict[str, Any] | None:
        if name not in self._models:
            self._models[name] = _describe_or_none(lambda: self.sagemaker.describe_model(ModelName=name))
        return self._models[name]

    def prefix_list_cidrs(self, prefix_list_id: str) -> list[str] | None:
        """The CIDRs of a customer-managed prefix list (a rule from it is a rule from each of them); None
        for an AWS-managed list (the ranges of an AWS service) or one that is gone. Two calls, cached."""
        if prefix_list_id not in self._prefix_lists:
            found = self._describe_one(lambda: self.ec2.describe_managed_prefix_lists(PrefixListIds=[prefix_list_id]),
                                       "PrefixLists")
            if found is None or found.get("OwnerId") == "AWS":
                self._prefix_lists[prefix_list_id] = None
            else:
                self._prefix_lists[prefix_list_id] = sorted(
                    entry["Cidr"] for page in self.ec2.get_paginator("get_managed_prefix_list_entries").paginate(
                        PrefixListId=prefix_list_id) for entry in page.get("Entries", []) if entry.get("Cidr"))
        return self._prefix_lists[prefix_list_id]

    def private_zones(self, vpc_id: str) -> list[dict[str, Any]]:
        """The Route 53 private hosted zones associated with a VPC ({"Id", "Name"}), one paginated call."""
        if vpc_id not in self._zones:
            route53 = self.clients.client("route53", self.region, self.account)
            zones, token = [], None
            while True:
                page = route53.list_hosted_zones_by_vpc(VPCId=vpc_id, VPCRegion=self.region,
                                                        **({"NextToken": token} if token else {}))
                zones += [{"Id": z.get("HostedZoneId"), "Name": z.get("Name")}
                          for z in page.get("HostedZoneSummaries", [])]
                token = page.get("NextToken")
                if not token:
                    break
            self._zones[vpc_id] = zones
        return self._zones[vpc_id]

    def security_group_users(self, group_id: str) -> set[str]:
        """Kinds of resources whose network interfaces carry this group (one filtered call)."""
        return self._users(self._sg_users, "group-id", group_id)


def _vpc_cidrs(vpc: dict[str, Any]) -> list[str]:
    """The VPC's associated IPv4 and IPv6 CIDR blocks."""
    cidrs = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
             if a.get("CidrBlockState", {}).get("State", "associated") == "associated"]
    cidrs += [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", [])
              if a.get("Ipv6CidrBlockState", {}).get("State", "associated") == "associated"]
    if not cidrs and vpc.get("CidrBlock"):
        cidrs.append(vpc["CidrBlock"])
    return sorted(set(cidrs))


def _flow_log_view(flow_log: dict[str, Any]) -> dict[str, Any]:
    return {k: flow_log[k] for k in ("FlowLogId", "ResourceId", "TrafficType", "FlowLogStatus", "DeliverLogsStatus",
                                     "LogDestinationType", "LogDestination", "LogGroupName") if k in flow_log}


def _tags_from_list(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or [] if "Key" in t}


def collect_notebook(lookups: Lookups, ref: ResourceRef) -> Resource | None:
    try:
        nb = lookups.sagemaker.describe_notebook_instance(NotebookInstanceName=ref.resource_id)
    except ClientError as exc:
        if _missing(exc):
            return None
        raise
    arn = nb["NotebookInstanceArn"]
    tags = _sagemaker_tags(lookups, arn)
    subnet_id = nb.get("SubnetId")
    state: dict[str, Any] = {
        "NotebookInstanceName": nb["NotebookInstanceName"],
        "NotebookInstanceStatus": nb.get("NotebookInstanceStatus"),
        "DirectInternetAccess": nb.get("DirectInternetAccess"),
        "RootAccess": nb.get("RootAccess"),
        "SubnetId": subnet_id,
        "SecurityGroups": list(nb.get("SecurityGroups", [])),
        "InstanceType": nb.get("InstanceType"),
    }
    if subnet_id:
        state["Subnet"] = lookups.subnet_view(subnet_id)
    version = f"{nb.get('NotebookInstanceStatus')}@{nb.get('LastModifiedTime')}"
    return Resource(ref, arn, state, tags, version)


class BulkTags(dict):
    """Tags read in bulk at the start of a scan or sweep (minutes old, and the tagging index is
    eventually consistent): the pipeline reads them again before acting on the resource."""


def _sagemaker_tags(lookups: Lookups, arn: str) -> dict[str, str]:
    bulk = lookups.bulk_tags(arn)
    if bulk is not None:
        return BulkTags(bulk)
    return sagemaker_tags(lookups.sagemaker, arn)


def sagemaker_tags(sagemaker: Any, arn: str) -> dict[str, str]:
    """A SageMaker resource's tags now (ListTags)."""
    tags: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update(_tags_from_list(page.get("Tags")))
    return tags


def _describe_job(lookups: Lookups, ref: ResourceRef) -> dict[str, Any] | None:
    sm, name = lookups.sagemaker, ref.resource_id
    try:
        if ref.resource_type == TRAINING_JOB:
            return sm.describe_training_job(TrainingJobName=name)
        if ref.resource_type == PROCESSING_JOB:
            return sm.describe_processing_job(ProcessingJobName=name)
        if ref.resource_type == TUNING_JOB:
            return sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        return sm.describe_transform_job(TransformJobName=name)
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def instance_count(resource_config: dict[str, Any] | None) -> int | None:
    """Instances of a training resource config: a heterogeneous cluster's instance groups added up
    (it has no InstanceCount of its own), else its InstanceCount."""
    config = resource_config or {}
    groups = config.get("InstanceGroups") or []
    if groups:
        return sum(int(g.get("InstanceCount") or 0) for g in groups)
    return config.get("InstanceCount") or config.get("SelectedInstanceCount")


def _definition_instances(definition: dict[str, Any]) -> int:
    """Instances each training job of a tuning definition runs on: its ResourceConfig, or its
    HyperParameterTuningResourceConfig (one count, or one of several instance configurations)."""
    tuning = definition.get("HyperParameterTuningResourceConfig") or {}
    counts = [instance_count(definition.get("ResourceConfig")), tuning.get("InstanceCount")]
    counts += [c.get("InstanceCount") for c in tuning.get("InstanceConfigs") or []]
    return max((int(c) for c in counts if c), default=1)


def job_view(kind: str, job: dict[str, Any], model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every kind of job as one shape: isolation, VPC, encryption, instance count, status."""
    if kind == TRAINING_JOB:
        status, settings = job.get("TrainingJobStatus"), job
        count = instance_count(job.get("ResourceConfig"))
    elif kind == PROCESSING_JOB:
        status, settings = job.get("ProcessingJobStatus"), job.get("NetworkConfig") or {}
        count = ((job.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("InstanceCount")
    elif kind == TUNING_JOB:
        status = job.get("HyperParameterTuningJobStatus")
        definitions = [job["TrainingJobDefinition"]] if job.get("TrainingJobDefinition") else []
        definitions += job.get("TrainingJobDefinitions") or []
        # every training job the tuner starts must comply: the least isolated definition decides
        vpcs = [d.get("VpcConfig") for d in definitions]
        settings = {
            "EnableNetworkIsolation": bool(definitions) and all(d.get("EnableNetworkIsolation") for d in definitions),
            "EnableInterContainerTrafficEncryption":
                bool(definitions) and all(d.get("EnableInterContainerTrafficEncryption") for d in definitions),
            "VpcConfig": {"Subnets": sorted({s for v in vpcs for s in v.get("Subnets", [])}),
                          "SecurityGroupIds": sorted({g for v in vpcs for g in v.get("SecurityGroupIds", [])})}
            if definitions and all(vpcs) else None,
        }
        count = max((_definition_instances(d) for d in definitions), default=None)
    else:  # transform: isolation and VPC are the model's
        status, settings = job.get("TransformJobStatus"), model or {}
        count = (job.get("TransformResources") or {}).get("InstanceCount")
    name_key = {TRAINING_JOB: "TrainingJobName", PROCESSING_JOB: "ProcessingJobName",
                TUNING_JOB: "HyperParameterTuningJobName", TRANSFORM_JOB: "TransformJobName"}[kind]
    view = {
        "JobName": job.get(name_key),
        "JobKind": kind,
        "JobStatus": status,
        "EnableNetworkIsolation": bool(settings.get("EnableNetworkIsolation")),
        "VpcConfig": settings.get("VpcConfig") or None,
        "InstanceCount": count,
    }
    if kind == TRANSFORM_JOB:
        view["ModelName"] = job.get("ModelName")
    else:
        view["EnableInterContainerTrafficEncryption"] = bool(settings.get("EnableInterContainerTrafficEncryption"))
    return view


def collect_job(lookups: Lookups, ref: ResourceRef) -> Resource | None:
    job = _describe_job(lookups, ref)
    if job is None:
        return None
    model = lookups.model(job["ModelName"]) if ref.resource_type == TRANSFORM_JOB and job.get("ModelName") else None
    state = job_view(ref.resource_type, job, model)
    subnets = (state.get("VpcConfig") or {}).get("Subnets", [])
    _in_vpc(lookups, state, subnets)
    arn_key = {TRAINING_JOB: "TrainingJobArn", PROCESSING_JOB: "ProcessingJobArn",
               TUNING_JOB: "HyperParameterTuningJobArn", TRANSFORM_JOB: "TransformJobArn"}[ref.resource_type]
    arn = job[arn_key]
    return Resource(ref, arn, state, _sagemaker_tags(lookups, arn), version=f"{state['JobStatus']}")


def _in_vpc(lookups: Lookups, state: dict[str, Any], subnets: list[str]) -> None:
    """Add the subnet views and their zones, for the private-subnet and zone-span checks."""
    state["SubnetViews"] = [lookups.subnet_view(s) for s in subnets]
    state["AvailabilityZones"] = sorted({v["AvailabilityZone"] for v in state["SubnetViews"]
                                         if v and v.get("AvailabilityZone")})


def collect_model(lookups: Lookups, ref: ResourceRef) -> Resource | None:
    model = lookups.model(ref.resource_id)
    if model is None:
        return None
    vpc_config = model.get("VpcConfig") or None
    state = {"ModelName": model["ModelName"], "EnableNetworkIsolation": bool(model.get("EnableNetworkIsolation")),
             "VpcConfig": vpc_config}
    _in_vpc(lookups, state, (vpc_config or {}).get("Subnets", []))
    arn = model["ModelArn"]
    return Resource(ref, arn, state, _sagemaker_tags(lookups, arn))


def _describe_or_none(describe: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return describe()
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def _variants(config: dict[str, Any], key: str = "ProductionVariants") -> list[dict[str, Any]]:
    return [{k: v[k] for k in ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType") if k in v}
            | {"Serverless": "ServerlessConfig" in v} for v in config.get(key) or []]


def collect_endpoint_config(lookups: Lookups, ref: ResourceRef) -> Resource | None:
    config = _describe_or_none(lambda: lookups.sagemaker.describe_endpoint_config(EndpointConfigName=ref.resource_id))
    if config is None:
        return None
    state = {"EndpointConfigName": config["EndpointConfigName"], "ProductionVariants": _variants(config)}
    arn = config["EndpointConfigArn"]
    return Resource(ref, arn, state, _sagemaker_tags(lookups, arn))


def collect_endpoint(lookups: Lookups, ref: ResourceRef) -> Resource | None:
    """An endpoint with its configuration's variants and the subnets of the models they serve."""
    endpoint = _describe_or_none(lambda: lookups.sagemaker.describe_endpoint(EndpointName=ref.resource_id))
    if endpoint is None:
        return None
    name = endpoint.get("EndpointConfigName")
    config = _describe_or_none(lambda: lookups.sagemaker.describe_endpoint_config(EndpointConfigName=name)) or {}
    variants, shadows = _variants(config), _variants(config, "ShadowProductionVariants")
    # what the endpoint runs: its variants' models, its shadow variants' too; in the subnets of its
    # configuration's own VpcConfig (endpoints of inference components) and of those models
    models = sorted({v["ModelName"] for v in variants + shadows if v.get("ModelName")})
    subnets = sorted(set((config.get("VpcConfig") or {}).get("Subnets") or []) | {
        s for m in models for s in ((lookups.model(m) or {}).get("VpcConfig") or {}).get("Subnets", [])})
    state = {"EndpointName": endpoint["EndpointName"], "EndpointStatus": endpoint.get("EndpointStatus"),
             "EndpointConfigName": name, "ProductionVariants": variants, "ShadowProductionVariants": shadows,
             "Models": models, "VpcConfig": {"Subnets": subnets} if subnets else None}
    _in_vpc(lookups, state, subnets)
    arn = endpoint["EndpointArn"]
    return Resource(ref, arn, state, _sagemaker_tags(lookups, arn), version=str(endpoint.get("EndpointStatus")))


APP_BUSY = ("InService", "Pending", "Deleting")


def collect_domain(lookups: Lookups, ref: ResourceRef) -> Resource | None:
    domain = _describe_or_none(lambda: lookups.sagemaker.describe_domain(DomainId=ref.resource_id))
    if domain is None:
        return None
    busy = [a.get("AppName") for page in lookups.sagemaker.get_paginator("list_apps").paginate(
                DomainIdEquals=ref.resource_id)
            for a in page.get("Apps", []) if a.get("Status") in APP_BUSY]
    subnets = list(domain.get("SubnetIds", []))
    rstudio = ((domain.get("DomainSettings") or {}).get("RStudioServerProDomainSettings") or {})
    state = {"DomainId": domain["DomainId"], "DomainName": domain.get("DomainName"),
             "AppNetworkAccessType": domain.get("AppNetworkAccessType"), "VpcId": domain.get("VpcId"),
             "VpcConfig": {"Subnets": subnets} if subnets else None, "Status": domain.get("Status"),
             "RunningApps": sorted(busy), "AppsState": "running" if busy else "none",
             "DefaultSecurityGroups": list((domain.get("DefaultUserSettings") or {}).get("SecurityGroups") or []),
             "RStudioDomainExecutionRole": bool(rstudio.get("DomainExecutionRoleArn"))}
    _in_vpc(lookups, state, subnets)
    arn = domain["DomainArn"]
    return Resource(ref, arn, state, _sagemaker_tags(lookups, arn), version=state["AppsState"])


def collect_subnet(lookups: Lookups, ref: ResourceRef, hints: frozenset) -> Resource | None:
    subnet_id = ref.resource_id
    lookups.together(lambda: lookups.subnet_view(subnet_id), lambda: lookups.network_acl(subnet_id),
                     lambda: lookups.subnet_users(subnet_id))
    view = lookups.subnet_view(ref.resource_id)
    if view is None:
        return None
    subnet = lookups.subnet(ref.resource_id) or {}
    acl = lookups.network_acl(ref.resource_id) or {}
    state = {**view, "UsedBy": sorted(set(hints) | lookups.subnet_users(ref.resource_id)),
             "NetworkAcl": {"NetworkAclId": acl.get("NetworkAclId"), "Entries": [
                 {k: e[k] for k in ("RuleNumber", "Egress", "Protocol", "RuleAction", "CidrBlock", "Ipv6CidrBlock",
                                    "PortRange") if k in e} for e in acl.get("Entries", [])]}}
    arn = subnet.get("SubnetArn") or f"arn:aws:ec2:{ref.region}:{ref.account}:subnet/{ref.resource_id}"
    return Resource(ref, arn, state, _tags_from_list(subnet.get("Tags")))


def endpoint_service(endpoint: dict[str, Any]) -> str:
    """`com.amazonaws.eu-west-1.sagemaker.api` -> `sagemaker.api`."""
    parts = str(endpoint.get("ServiceName", "")).split(".")
    return ".".join(parts[3:]) if len(parts) > 3 and parts[0] == "com" else str(endpoint.get("ServiceName"))


def collect_vpc(lookups: Lookups, ref: ResourceRef, hints: frozenset) -> Resource | None:
    vpc_id = ref.resource_id
    lookups.together(lambda: lookups.vpc(vpc_id), lambda: lookups.vpc_attributes(vpc_id),
                     lambda: lookups.flow_logs(vpc_id), lambda: lookups.vpc_users(vpc_id),
                     lambda: lookups.vpc_endpoints(vpc_id))
    vpc = lookups.vpc(ref.resource_id)
    if vpc is None:
        return None
    state = {
        "VpcId": ref.resource_id,
        "IsDefault": bool(vpc.get("IsDefault")),
        "CidrBlocks": _vpc_cidrs(vpc),
        **lookups.vpc_attributes(ref.resource_id),
        "FlowLogs": lookups.flow_logs(ref.resource_id),
        "UsedBy": sorted(set(hints) | lookups.vpc_users(ref.resource_id)),
        "Endpoints": [{"VpcEndpointId": e["VpcEndpointId"], "Service": endpoint_service(e),
                       "VpcEndpointType": e.get("VpcEndpointType"), "State": e.get("State")}
                      for e in lookups.vpc_endpoints(ref.resource_id)],
    }
    arn = f"arn:aws:ec2:{ref.region}:{vpc.get('OwnerId', ref.account)}:vpc/{ref.resource_id}"
    return Resource(ref, arn, state, _tags_from_list(vpc.get("Tags")))


def private_dns_name(endpoint: dict[str, Any], region: str) -> str:
    """The name private DNS would take over: com.amazonaws.<region>.sagemaker.api ->
    api.sagemaker.<region>.amazonaws.com (the service's labels, most specific first)."""
    return ".".join([*reversed(endpoint_service(endpoint).split(".")), region, "amazonaws.com"])


def private_dns_conflict(lookups: Lookups, endpoint: dict[str, Any]) -> str | None:
    """What in the VPC already serves the endpoint's private DNS name, so that AWS would refuse to enable
    it: another live endpoint of the service with private DNS, or a private hosted zone associated with
    the VPC for that name or a parent of it. None when nothing does."""
    service = endpoint_service(endpoint)
    for other in lookups.vpc_endpoints(endpoint["VpcId"]):
        if (other["VpcEndpointId"] != endpoint["VpcEndpointId"] and endpoint_service(other) == service
                and other.get("PrivateDnsEnabled") and live_endpoint(other)):
            return f"endpoint {other['VpcEndpointId']} of {service} already has private DNS in {endpoint['VpcId']}"
    name = private_dns_name(endpoint, lookups.region)
    for zone in lookups.private_zones(endpoint["VpcId"]):
        zone_name = str(zone.get("Name", "")).rstrip(".").lower()
        if zone_name and (name == zone_name or name.endswith("." + zone_name)):
            return (f"private hosted zone {zone.get('Id')} ({zone_name}) associated with {endpoint['VpcId']} "
                    f"serves {name}")
    return None


def collect_vpc_endpoint(lookups: Lookups, ref: ResourceRef) -> Resource | None:
    endpoint = lookups.vpc_endpoint(ref.resource_id)
    if endpoint is None or not live_endpoint(endpoint):
        return None  # gone, or going: nothing to evaluate
    dns = lookups.vpc_attributes(endpoint["VpcId"])
    groups = []
    for group in endpoint.get("Groups", []):
        found = lookups.security_group(group["GroupId"]) or {}
        users = lookups.security_group_users(group["GroupId"]) - {USED_BY_VPC_ENDPOINT, USED_BY_OTHER}
        groups.append({"GroupId": group["GroupId"], "IsDefault": found.get("GroupName") == "default",
                       "UsedBy": sorted(users)})
    subnets = list(endpoint.get("SubnetIds", []))
    state = {
        "VpcEndpointId": ref.resource_id, "VpcId": endpoint["VpcId"], "Service": endpoint_service(endpoint),
        "VpcEndpointType": endpoint.get("VpcEndpointType"), "State": endpoint.get("State"),
        "PrivateDnsEnabled": bool(endpoint.get("PrivateDnsEnabled")), "SecurityGroups": groups,
        "PolicyDocument": endpoint.get("PolicyDocument"), "VpcConfig": {"Subnets": subnets} if subnets else None,
        "VpcDns": "ready" if dns.get("EnableDnsSupport") and dns.get("EnableDnsHostnames") else "off",
        "PrivateDnsConflict": None,
    }
    if endpoint.get("VpcEndpointType") == "Interface" and not state["PrivateDnsEnabled"]:
        state["PrivateDnsConflict"] = private_dns_conflict(lookups, endpoint)
    _in_vpc(lookups, state, subnets)
    arn = f"arn:aws:ec2:{ref.region}:{endpoint.get('OwnerId', ref.account)}:vpc-endpoint/{ref.resource_id}"
    return Resource(ref, arn, state, _tags_from_list(endpoint.get("Tags")))


def collect_security_group(lookups: Lookups, ref: ResourceRef, known_users: frozenset) -> Resource | None:
    group_id = ref.resource_id
    lookups.together(lambda: lookups.security_group(group_id), lambda: lookups.security_group_rules(group_id),
                     lambda: lookups.security_group_users(group_id))
    group = lookups.security_group(ref.resource_id)
    if group is None:
        return None
    rules = [dict(r) for r in lookups.security_group_rules(ref.resource_id)]
    for rule in rules:  # a customer-managed prefix list holds CIDRs of anyone's choosing: 0.0.0.0/0 too
        cidrs = lookups.prefix_list_cidrs(rule["PrefixListId"]) if rule.get("PrefixListId") else None
        if cidrs is not None:
            rule["PrefixListCidrs"] = cidrs
    vpc_id = group.get("VpcId")
    users = set(known_users) | lookups.security_group_users(ref.resource_id)
    state = {
        "GroupId": group["GroupId"],
        "GroupName": group.get("GroupName"),
        "VpcId": vpc_id,
        "IsDefault": group.get("GroupName") == "default",
        "VpcCidrs": lookups.vpc_cidrs(vpc_id) if vpc_id else [],
        "AttachedTo": sorted(users),
        "Rules": rules,
    }
    arn = f"arn:aws:ec2:{ref.region}:{group.get('OwnerId', ref.account)}:security-group/{group['GroupId']}"
    return Resource(ref, arn, state, _tags_from_list(group.get("Tags")), version="")


@dataclass
class Collected:
    resources: list[Resource] = field(default_factory=list)
    missing: list[ResourceRef] = field(default_factory=list)
    errors: list[tuple[ResourceRef, str]] = field(default_factory=list)


# A collector reads one resource; `hints` are what the resources that use it told us (kinds of users).
CollectFn = Callable[[Lookups, ResourceRef, frozenset], "Resource | None"]
COLLECTORS: dict[str, CollectFn] = {
    NOTEBOOK: lambda lookups, ref, hints: collect_notebook(lookups, ref),
    TRAINING_JOB: lambda lookups, ref, hints: collect_job(lookups, ref),
    PROCESSING_JOB: lambda lookups, ref, hints: collect_job(lookups, ref),
    TUNING_JOB: lambda lookups, ref, hints: collect_job(lookups, ref),
    TRANSFORM_JOB: lambda lookups, ref, hints: collect_job(lookups, ref),
    MODEL: lambda lookups, ref, hints: collect_model(lookups, ref),
    ENDPOINT_CONFIG: lambda lookups, ref, hints: collect_endpoint_config(lookups, ref),
    ENDPOINT: lambda lookups, ref, hints: collect_endpoint(lookups, ref),
    DOMAIN: lambda lookups, ref, hints: collect_domain(lookups, ref),
    SUBNET: collect_subnet,
    VPC: collect_vpc,
    VPC_ENDPOINT: lambda lookups, ref, hints: collect_vpc_endpoint(lookups, ref),
    SECURITY_GROUP: collect_security_group,
}
# Users before what they use, so that hints are known when the used resource is read.
ORDER = (NOTEBOOK, *JOB_TYPES, ENDPOINT, ENDPOINT_CONFIG, MODEL, DOMAIN, SUBNET, VPC, VPC_ENDPOINT, SECURITY_GROUP)


def related(resource: Resource) -> list[tuple[ResourceRef, set[str]]]:
    """The network resources a SageMaker resource uses, with what kind of user it is."""
    ref, state = resource.ref, resource.state
    if ref.resource_type == NOTEBOOK:
        kinds = {USED_BY_NOTEBOOK, USED_BY_SAGEMAKER}
        groups, subnets = state.get("SecurityGroups", []), [state["SubnetId"]] if state.get("SubnetId") else []
        vpc_id = (state.get("Subnet") or {}).get("VpcId")
    elif ref.resource_type in (*JOB_TYPES, MODEL, DOMAIN):
        # a transform job runs its model's containers in the model's network: inference, like endpoints
        kind = {MODEL: USED_BY_ENDPOINT, TRANSFORM_JOB: USED_BY_ENDPOINT,
                DOMAIN: USED_BY_STUDIO}.get(ref.resource_type, USED_BY_TRAINING)
        kinds = {kind, USED_BY_SAGEMAKER}
        vpc_config = state.get("VpcConfig") or {}
        groups, subnets = vpc_config.get("SecurityGroupIds", []), vpc_config.get("Subnets", [])
        vpc_id = next((s.get("VpcId") for s in state.get("SubnetViews", []) if s), None)
    elif ref.resource_type == ENDPOINT:  # what it serves: its configuration and models
        served = [(ResourceRef(MODEL, m, ref.account, ref.region), set()) for m in state.get("Models", [])]
        if state.get("EndpointConfigName"):
            served.append((ResourceRef(ENDPOINT_CONFIG, state["EndpointConfigName"], ref.account, ref.region), set()))
        return served
    else:
        return []
    out = [(ResourceRef(SECURITY_GROUP, g, ref.account, ref.region), kinds) for g in groups]
    out += [(ResourceRef(SUBNET, s, ref.account, ref.region), kinds) for s in subnets]
    if vpc_id:
        out.append((ResourceRef(VPC, vpc_id, ref.account, ref.region), {USED_BY_SAGEMAKER}))
    return out


class Collector:
    """Collects refs with one `Lookups` per (account, region), kept for the whole run."""

    def __init__(self, clients: Clients, types: Iterable[str] | None = None, index: Any = None,
                 workers: int = 1) -> None:
        self.clients = clients
        self.workers = workers  # concurrent reads of one type (sweeps and scans; events read a few)
        self.types = set(types) if types is not None else set(COLLECTORS)  # what the controls cover
        # The ledger's record of which resources use which (`remember_uses`, `users_of`): how a change to
        # a shared resource finds what depends on it without listing the account.
        self.index = index
        self._lookups: dict[tuple[str, str], Lookups] = {}
        self.on_progress: Any = None  # called with the count of resources read so far
        # What kind of users the network resources have, from SageMaker resources read with follow=False:
        # a sweep reads those first, in chunks, then the network resources once, with every hint known.
        self.hints: dict[ResourceRef, set[str]] = {}
        # Environment tags of the SageMaker resources read in this run, by VPC (VPC.11)
        self._environments: dict[tuple[str, str, str], dict[str, str | None]] = {}
        # (account, region) whose every SageMaker resource this run reads before its VPCs (a whole
        # sweep or scan): VPC.11 is answered from those reads, without asking the index.
        self._whole: set[tuple[str, str]] = set()

    def reads_every_sagemaker_resource(self, account: str, region: str) -> None:
        """The run lists and reads every SageMaker resource of the region before its VPCs (a sweep from
        its first resource, a scan) with no list failing: what it reads is the whole of what VPC.11
        asks the index for, and fresher (the index also remembers resources deleted within 30 days).
        A SageMaker resource whose read fails puts the region back on the index."""
        self._whole.add((account, region))

    def lookups(self, account: str, region: str) -> Lookups:
        key = (account, region)
        if key not in self._lookups:
            self._lookups[key] = Lookups(self.clients, account, region, self.workers)
        return self._lookups[key]

    def collect(self, refs: Iterable[ResourceRef], follow: bool = True) -> Collected:
        """Read every ref, and the network resources the SageMaker ones use (each once). A changed
        shared resource (a route table, a subnet, a deleted flow log) also brings in its users.
        With follow=False (sweeps, which read everything anyway) neither the resources used nor the
        users of a changed resource are read: only what kind of user the used ones have is kept
        (`hints`), for when they are collected later in the same run."""
        out = Collected()
        changed = list(dict.fromkeys(refs))
        # route tables and flow logs are not evaluated themselves: only what depends on them is
        pending: dict[ResourceRef, set[str]] = {ref: set(self.hints.get(ref, ())) for ref in changed
                                                if ref.resource_type not in (ROUTE_TABLE, FLOW_LOG)}
        for ref in changed if follow else ():
            for user in self._users(ref, out):
                pending.setdefault(user, set())
        done: set[ResourceRef] = set()
        for ref in [r for r in pending if r.resource_type not in COLLECTORS]:
            out.errors.append((ref, f"unsupported resource type {ref.resource_type}"))
            done.add(ref)
        while True:  # users before what they use; users found later (through a changed subnet) take another pass
            todo = [r for rtype in ORDER for r in pending if r.resource_type == rtype and r not in done]
            if not todo:
                return out
            done.update(todo)
            for resource in self._read_by_type(todo, pending, out):
                out.resources.append(resource)
                if resource.ref.resource_type == VPC:
                    resource.state["Environments"] = self._vpc_environments(resource.ref, out)
                uses = related(resource)
                for used, kinds in uses:
                    if used.resource_type not in self.types:
                        continue
                    if follow or used in pending:
                        pending.setdefault(used, set()).update(kinds)
                    else:
                        self.hints.setdefault(used, set()).update(kinds)
                self._remember(resource, uses)

    def _read_by_type(self, todo: list[ResourceRef], pending: dict[ResourceRef, set[str]],
                      out: Collected) -> Iterator[Resource]:
        """Read `todo` (in ORDER) one type at a time, each type's resources concurrently when there are
        several and `workers` > 1 (a sweep's chunk: the calls are network round trips). A type's hints
        are taken when its turn comes, after the types before it were read and their uses noted."""
        for _, group in itertools.groupby(todo, key=lambda r: r.resource_type):
            refs = list(group)

            def read(ref: ResourceRef) -> Resource | None:
                hints = frozenset(pending[ref])
                lookups = self.lookups(ref.account, ref.region)
                resource = self._guarded(ref, out, lambda: COLLECTORS[ref.resource_type](lookups, ref, hints))
                return dataclasses.replace(resource, read_at=lookups.created_at) if resource is not None else None

            yield from (resource for resource in concurrently(read, refs, self.workers, "netguard-read")
                        if resource is not None)

    def _users(self, ref: ResourceRef, out: Collected) -> list[ResourceRef]:
        """What depends on a changed shared resource: subnets behind a route table, and the resources the
        ledger's index says use the subnet or flow log."""
        found: list[ResourceRef] = []
        try:
            if ref.resource_type == ROUTE_TABLE:  # its subnets changed too
                found = [ResourceRef(SUBNET, s, ref.account, ref.region)
                         for s in self.lookups(ref.account, ref.region).route_table_subnets(ref.resource_id)]
            if self.index is not None and ref.resource_type in (SUBNET, ROUTE_TABLE, FLOW_LOG):
                indexed = found if ref.resource_type == ROUTE_TABLE else [ref]
                found += [user for changed in indexed for user in self.index.users_of(changed)]
        except AWS_ERRORS as exc:
            out.errors.append((ref, f"{error_code(exc)}: {error_message(exc)}"))
            return []
        return [r for r in found if r.resource_type in self.types]

    def _vpc_environments(self, vpc: ResourceRef, out: Collected) -> dict[str, list[str]]:
        """Environment tag value -> the SageMaker resources in the VPC with it: those read in this run,
        and, unless the run read the whole region, those the index remembers in the VPC's subnets
        (one query per subnet of the VPC)."""
        users = dict(self._environments.get((vpc.account, vpc.region, vpc.resource_id), {}))
        if self.index is not None and (vpc.account, vpc.region) not in self._whole:
            try:
                subnets = [ResourceRef(SUBNET, s, vpc.account, vpc.region)
                           for s in self.lookups(vpc.account, vpc.region).vpc_subnets(vpc.resource_id)]
                for found in concurrently(self.index.users_with_environment, subnets, self.workers, "netguard-index"):
                    for user, env in found:
                        users.setdefault(user.key, env)
            except AWS_ERRORS as exc:
                out.errors.append((vpc, f"{error_code(exc)}: {error_message(exc)}"))
        by_env: dict[str, list[str]] = {}
        for key, env in sorted(users.items()):
            by_env.setdefault(env or "(untagged)", []).append(key.rsplit("#", 1)[-1])
        return by_env

    def _remember(self, resource: Resource, uses: list[tuple[ResourceRef, set[str]]]) -> None:
        vpc_id = next((u.resource_id for u, _ in uses if u.resource_type == VPC), None)
        if vpc_id and resource.ref.resource_type in SAGEMAKER_TYPES:
            self._environments.setdefault((resource.ref.account, resource.ref.region, vpc_id), {})[
                resource.ref.key] = resource.tags.get("Environment")
        if self.index is None:
            return
        used = [u for u, _ in uses if u.resource_type == SUBNET]
        if resource.ref.resource_type == VPC:
            used = [ResourceRef(FLOW_LOG, f["FlowLogId"], resource.ref.account, resource.ref.region)
                    for f in resource.state.get("FlowLogs", []) if f.get("FlowLogId")]
        if used:
            try:
                self.index.remember_uses(resource.ref, used, resource.tags.get("Environment"))
            except AWS_ERRORS as exc:  # the index only speeds up later events: never fail the run for it
                log.warning("could not index what %s uses: %s", resource.ref.key, error_code(exc))

    def _guarded(self, ref: ResourceRef, out: Collected, read: Any) -> Resource | None:
        """One resource's read failing must not stop the others: record it and go on."""
        try:
            resource = read()
        except AWS_ERRORS as exc:
            message = f"{error_code(exc)}: {error_message(exc)}"
            log.warning("collect failed for %s: %s", ref.key, message)
            out.errors.append((ref, message))
            if ref.resource_type in SAGEMAKER_TYPES:  # VPC.11 no longer knows the region whole
                self._whole.discard((ref.account, ref.region))
            return None
        if resource is None:
            out.missing.append(ref)
        if self.on_progress is not None:
            self.on_progress(len(out.resources) + len(out.missing) + len(out.errors) + 1)
        return resource
