"""Collect: read the current state of referenced resources (read-only describe/get calls).

Each resource becomes plain data (Resource.state) that the checks read. Lookups shared by many
resources (subnets, route tables, VPC CIDRs, security groups, their users) go through `Lookups`,
which caches them for the run: per-event work depends on the resources the event names, never on
the size of the account (no list-everything to find one resource).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from botocore.exceptions import ClientError

from .aws import Clients, error_code, error_message
from .model import NOTEBOOK, SECURITY_GROUP, Resource, ResourceRef

log = logging.getLogger("netguard.collect")

NOT_FOUND_CODES = {
    "InvalidGroup.NotFound", "InvalidGroupId.Malformed", "InvalidSubnetID.NotFound",
    "InvalidVpcID.NotFound", "ResourceNotFound",
}

# Kinds of users a security group can have (SG.1 / SG.2 scope on `AttachedTo`).
USED_BY_NOTEBOOK = "notebook"
USED_BY_SAGEMAKER = "sagemaker"
USED_BY_VPC_ENDPOINT = "vpc-endpoint"
USED_BY_OTHER = "other"


def _missing(exc: ClientError) -> bool:
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return True
    # SageMaker answers ValidationException "RecordNotFound" for a missing notebook.
    message = error_message(exc).lower()
    return code == "ValidationException" and ("recordnotfound" in message or "not found" in message)


def classify_eni(eni: dict[str, Any]) -> set[str]:
    """What kind of resource uses an ENI, from the fields AWS sets on managed interfaces."""
    if eni.get("InterfaceType") == "vpc_endpoint":
        return {USED_BY_VPC_ENDPOINT}
    text = " ".join(str(eni.get(k, "")) for k in ("Description", "RequesterId")).lower()
    if "sagemaker" in text:
        return {USED_BY_SAGEMAKER, USED_BY_NOTEBOOK} if "notebook" in text else {USED_BY_SAGEMAKER}
    return {USED_BY_OTHER}


def normalize_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out = {k: rule[k] for k in ("SecurityGroupRuleId", "GroupId", "IsEgress", "IpProtocol", "FromPort",
                                "ToPort", "CidrIpv4", "CidrIpv6", "PrefixListId", "Description") if k in rule}
    referenced = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    if referenced:
        out["ReferencedGroupId"] = referenced
    return out


class Lookups:
    """Shared, cached reads for one account and region during one run."""

    def __init__(self, clients: Clients, account: str, region: str) -> None:
        self.account, self.region, self.clients = account, region, clients
        self._subnets: dict[str, dict[str, Any] | None] = {}
        self._route_tables: dict[str, dict[str, Any] | None] = {}
        self._main_tables: dict[str, dict[str, Any] | None] = {}
        self._vpc_cidrs: dict[str, list[str]] = {}
        self._sg_users: dict[str, set[str]] = {}
        self._groups: dict[str, dict[str, Any] | None] = {}
        self._rules: dict[str, list[dict[str, Any]]] = {}
        self._primed = False

    @property
    def ec2(self) -> Any:
        return self.clients.client("ec2", self.region, self.account)

    @property
    def sagemaker(self) -> Any:
        return self.clients.client("sagemaker", self.region, self.account)

    def prime(self) -> list[str]:
        """Scan mode: read the region's shared network state in a few paginated calls, so that
        collecting each resource afterwards costs no network lookup. Returns the security group ids."""
        def pages(operation: str, key: str) -> Iterable[dict[str, Any]]:
            for page in self.ec2.get_paginator(operation).paginate():
                yield from page.get(key, [])

        for subnet in pages("describe_subnets", "Subnets"):
            self._subnets[subnet["SubnetId"]] = subnet
        for table in pages("describe_route_tables", "RouteTables"):
            for assoc in table.get("Associations", []):
                if assoc.get("SubnetId"):
                    self._route_tables[assoc["SubnetId"]] = table
                if assoc.get("Main"):
                    self._main_tables[table["VpcId"]] = table
        for vpc in pages("describe_vpcs", "Vpcs"):
            self._vpc_cidrs[vpc["VpcId"]] = _vpc_cidrs(vpc)
        for group in pages("describe_security_groups", "SecurityGroups"):
            self._groups[group["GroupId"]] = group
            self._rules[group["GroupId"]] = []
            self._sg_users[group["GroupId"]] = set()
        for rule in pages("describe_security_group_rules", "SecurityGroupRules"):
            self._rules.setdefault(rule["GroupId"], []).append(normalize_rule(rule))
        for eni in pages("describe_network_interfaces", "NetworkInterfaces"):
            for group in eni.get("Groups", []):
                self._sg_users.setdefault(group["GroupId"], set()).update(classify_eni(eni))
        for subnet_id in self._subnets:
            if subnet_id not in self._route_tables:
                self._route_tables[subnet_id] = self._main_tables.get(self._subnets[subnet_id]["VpcId"])
        self._primed = True
        return sorted(self._groups)

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
            rules: list[dict[str, Any]] = []
            paginator = self.ec2.get_paginator("describe_security_group_rules")
            for page in paginator.paginate(Filters=[{"Name": "group-id", "Values": [group_id]}]):
                rules.extend(normalize_rule(r) for r in page.get("SecurityGroupRules", []))
            self._rules[group_id] = rules
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

    def vpc_cidrs(self, vpc_id: str) -> list[str]:
        if vpc_id not in self._vpc_cidrs:
            vpc = self._describe_one(lambda: self.ec2.describe_vpcs(VpcIds=[vpc_id]), "Vpcs")
            self._vpc_cidrs[vpc_id] = _vpc_cidrs(vpc) if vpc else []
        return self._vpc_cidrs[vpc_id]

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

    def security_group_users(self, group_id: str) -> set[str]:
        """Kinds of resources whose network interfaces carry this group (one filtered call)."""
        if group_id not in self._sg_users and not self._primed:
            users: set[str] = set()
            paginator = self.ec2.get_paginator("describe_network_interfaces")
            for page in paginator.paginate(Filters=[{"Name": "group-id", "Values": [group_id]}]):
                for eni in page.get("NetworkInterfaces", []):
                    users |= classify_eni(eni)
            self._sg_users[group_id] = users
        return self._sg_users.get(group_id, set())


def _vpc_cidrs(vpc: dict[str, Any]) -> list[str]:
    """The VPC's associated IPv4 and IPv6 CIDR blocks."""
    cidrs = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
             if a.get("CidrBlockState", {}).get("State", "associated") == "associated"]
    cidrs += [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", [])
              if a.get("Ipv6CidrBlockState", {}).get("State", "associated") == "associated"]
    if not cidrs and vpc.get("CidrBlock"):
        cidrs.append(vpc["CidrBlock"])
    return sorted(set(cidrs))


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
    tags: dict[str, str] = {}
    paginator = lookups.sagemaker.get_paginator("list_tags")
    for page in paginator.paginate(ResourceArn=arn):
        tags.update(_tags_from_list(page.get("Tags")))
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


def collect_security_group(lookups: Lookups, ref: ResourceRef, known_users: set[str]) -> Resource | None:
    group = lookups.security_group(ref.resource_id)
    if group is None:
        return None
    rules = lookups.security_group_rules(ref.resource_id)
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


class Collector:
    """Collects refs with one `Lookups` per (account, region), kept for the whole run."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._lookups: dict[tuple[str, str], Lookups] = {}
        self.on_progress: Any = None  # called with the count of resources read so far

    def lookups(self, account: str, region: str) -> Lookups:
        key = (account, region)
        if key not in self._lookups:
            self._lookups[key] = Lookups(self.clients, account, region)
        return self._lookups[key]

    def collect(self, refs: Iterable[ResourceRef]) -> Collected:
        """Read every ref; a notebook also brings in its security groups (known to be notebook SGs)."""
        out = Collected()
        pending: dict[ResourceRef, set[str]] = {}
        for ref in refs:
            pending.setdefault(ref, set())
        notebooks = [r for r in pending if r.resource_type == NOTEBOOK]
        for ref in notebooks:
            resource = self._guarded(ref, out, lambda r=ref: collect_notebook(self.lookups(r.account, r.region), r))
            if resource is None:
                continue
            out.resources.append(resource)
            for group_id in resource.state.get("SecurityGroups", []):
                sg_ref = ResourceRef(SECURITY_GROUP, group_id, ref.account, ref.region)
                pending.setdefault(sg_ref, set()).update({USED_BY_NOTEBOOK, USED_BY_SAGEMAKER})
        for ref, users in pending.items():
            if ref.resource_type != SECURITY_GROUP:
                continue
            resource = self._guarded(
                ref, out, lambda r=ref, u=users: collect_security_group(self.lookups(r.account, r.region), r, u))
            if resource is not None:
                out.resources.append(resource)
        return out

    def _guarded(self, ref: ResourceRef, out: Collected, read: Any) -> Resource | None:
        """One resource's read failing must not stop the others: record it and go on."""
        try:
            resource = read()
        except ClientError as exc:
            message = f"{error_code(exc)}: {error_message(exc)}"
            log.warning("collect failed for %s: %s", ref.key, message)
            out.errors.append((ref, message))
            return None
        if resource is None:
            out.missing.append(ref)
        if self.on_progress is not None:
            self.on_progress(len(out.resources) + len(out.missing) + len(out.errors) + 1)
        return resource
