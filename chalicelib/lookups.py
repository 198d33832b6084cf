"""Lookups: shared, cached reads of one account and region (subnets, route tables, VPC CIDRs and
attributes, security groups and their users, flow logs, models, prefix lists, private zones).

Collectors (chalicelib/resources/) read a resource's own describe call and everything around it through
`Lookups`, which caches for the run: per-event work depends on the resources the event names, never on
the size of the account (no list-everything to find one resource). A scan or sweep primes the caches
with a few paginated calls (`prime`).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from .aws import AWS_ERRORS, Clients, concurrently, error_code
from .checks import live_endpoint
from .model import SECURITY_GROUP, SUBNET, VPC, VPC_ENDPOINT
from .reads import (
    classify_eni,
    describe_or_none,
    flow_log_view,
    missing,
    normalize_rule,
    tags_from_list,
    vpc_cidrs,
)

log = logging.getLogger("netguard.collect")


# The IAM statements the shared reads need (tools/iam.py builds the Lambda and member policies from them,
# each resource type's own reads, and the actions' writes).
READ_STATEMENTS: tuple[dict[str, Any], ...] = (
    {"Sid": "ReadNetworkState", "Effect": "Allow", "Resource": "*", "Action": [
        "ec2:DescribeFlowLogs", "ec2:DescribeManagedPrefixLists", "ec2:DescribeNetworkAcls",
        "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroupRules",
        "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcEndpoints", "ec2:DescribeVpcs"]},
    {"Sid": "ReadPrefixListEntries", "Effect": "Allow", "Action": "ec2:GetManagedPrefixListEntries",
     "Resource": "arn:aws:ec2:*:*:prefix-list/*"},
    {"Sid": "ReadVpcAttributes", "Effect": "Allow", "Action": "ec2:DescribeVpcAttribute",
     "Resource": "arn:aws:ec2:*:*:vpc/*"},
    {"Sid": "ReadVpcHostedZones", "Effect": "Allow", "Action": "route53:ListHostedZonesByVPC", "Resource": "*"},
    {"Sid": "ReadTagsInBulk", "Effect": "Allow", "Action": "tag:GetResources", "Resource": "*"},
)

class Lookups:
    """Shared, cached reads for one account and region during one run."""

    def __init__(self, clients: Clients, account: str, region: str, workers: int = 1) -> None:
        self.account, self.region, self.clients = account, region, clients
        # Every answer cached here was read at or after this time (what a claim compares with: see
        # ledger.claim_open); a sweep's lookups live for its whole task.
        self.created_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
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
            self._flow_logs.setdefault(flow_log.get("ResourceId", ""), []).append(flow_log_view(flow_log))
        for subnet_id, subnet in self._subnets.items():  # None: looked up before priming and not found
            if subnet is not None and subnet_id not in self._route_tables:
                self._route_tables[subnet_id] = self._main_tables.get(subnet["VpcId"])
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
                    found[item["ResourceARN"]] = tags_from_list(item.get("Tags"))
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
            if not missing(exc):
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
        return vpc_cidrs(vpc) if vpc else []

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
            self._vpc_attributes[vpc_id] = {key: value for (_, key), value in zip(attributes, values, strict=True)}
        return self._vpc_attributes[vpc_id]

    def flow_logs(self, vpc_id: str) -> list[dict[str, Any]]:
        if vpc_id not in self._flow_logs:
            self._flow_logs[vpc_id] = [flow_log_view(f) for f in self._pages(
                "describe_flow_logs", "FlowLogs", "resource-id", vpc_id)]
        return self._flow_logs[vpc_id]

    def model(self, name: str) -> dict[str, Any] | None:
        if name not in self._models:
            self._models[name] = describe_or_none(lambda: self.sagemaker.describe_model(ModelName=name))
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
