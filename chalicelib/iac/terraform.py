"""Terraform plans (`terraform show -json PLANFILE`) read into declared resources, in CloudFormation's terms.

Each planned resource (`resource_changes[].change.after`, what is to exist after apply; destroyed resources
are left out) is translated to the CloudFormation type and properties that say the same. A value the plan
marks unknown (`after_unknown`) is resolved through the configuration where it is a reference to another
resource of the plan (`subnet_id = aws_subnet.private_a.id`); an attribute the configuration does not set
is AWS's or the provider's default; anything else stays unknown, with the attribute path.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .index import pick
from .model import MAX_DEPTH, Declared, FileError, Parsed, Ref
from .unknown import Unknown, is_unknown

_ADDRESS = re.compile(r"^((?:module\.[\w-]+(?:\[[^\]]*\])?\.)*(?:data\.)?[\w-]+\.[\w-]+(?:\[[^\]]*\])?)(?:\.(.+))?$")
_NOT_RESOURCES = ("var.", "local.", "each.", "count.", "path.", "terraform.", "self.")
_ATTRIBUTES = {"id": None, "arn": "Arn", "name": None, "key_id": None, "cidr_block": "CidrBlock",
               "availability_zone": "AvailabilityZone", "vpc_id": "VpcId"}
# Attributes that hold a list (a reference stands for a one-element list there)
_LISTS = {"security_groups", "security_group_ids", "subnet_ids", "subnets", "cidr_blocks", "ipv6_cidr_blocks",
          "prefix_list_ids", "route_table_ids"}
DEFAULTED = object()  # not in the configuration, computed: AWS's (or the provider's) default applies


def is_plan(data: Any) -> bool:
    return isinstance(data, Mapping) and "format_version" in data and (
        "resource_changes" in data or "planned_values" in data)


def _configuration(module: Mapping[str, Any], prefix: str, out: dict[str, Mapping[str, Any]], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        return
    for resource in module.get("resources") or []:
        if isinstance(resource, Mapping) and isinstance(resource.get("address"), str):
            out[prefix + resource["address"]] = resource.get("expressions") or {}
    for name, call in (module.get("module_calls") or {}).items():
        if isinstance(call, Mapping) and isinstance(call.get("module"), Mapping):
            _configuration(call["module"], f"{prefix}module.{name}.", out, depth + 1)


class Plan:
    def __init__(self, path: str, plan: Mapping[str, Any]) -> None:
        self.path = path
        self.expressions: dict[str, Mapping[str, Any]] = {}
        _configuration((plan.get("configuration") or {}).get("root_module") or {}, "", self.expressions)
        self.changes: dict[str, Mapping[str, Any]] = {}
        for change in plan.get("resource_changes") or []:
            if not isinstance(change, Mapping) or change.get("mode") != "managed":
                continue
            body = change.get("change") or {}
            if list(body.get("actions") or []) == ["delete"] or not isinstance(body.get("after"), Mapping):
                continue
            self.changes[str(change.get("address"))] = change

    def _instances(self, address: str) -> list[str]:
        """An address without an index stands for all its count/for_each instances, in order."""
        if address in self.changes:
            return [address]
        return sorted(a for a in self.changes if a.startswith(address + "["))

    def references(self, expression: Any, module: str) -> list[Ref] | None:
        """The resources an expression refers to, in order; None when it depends on anything else."""
        if not isinstance(expression, Mapping) or not isinstance(expression.get("references"), list):
            return None
        found: dict[str, str | None] = {}
        for reference in expression["references"]:
            if not isinstance(reference, str) or reference.startswith(_NOT_RESOURCES):
                return None
            match = _ADDRESS.match(reference)
            if not match or match.group(1).startswith("data."):
                return None
            address = module + match.group(1)
            if address not in found or found[address] is None:
                found[address] = match.group(2)
        # "aws_subnet.a" is listed beside "aws_subnet.a.id": the same resource
        refs = []
        for address, attribute in found.items():
            if any(other != address and other.startswith(address + "[") for other in found):
                continue
            instances = self._instances(address)
            if not instances:
                return None
            refs += [Ref(a, _ATTRIBUTES.get(attribute or "id", attribute)) for a in instances]
        return refs

    def value(self, value: Any, unknown: Any, expression: Any, path: str, module: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise FileError(f"{self.path}: {path}: nested too deeply")
        if unknown is True:
            if expression is None:
                return DEFAULTED
            refs = self.references(expression, module)
            if refs and path.rsplit(".", 1)[-1] in _LISTS:
                return refs
            if refs is not None and len(refs) == 1:
                return refs[0]
            return Unknown(f"{path}: known after apply")
        if isinstance(value, Mapping):
            keys = set(value) | ({k for k, v in unknown.items() if v} if isinstance(unknown, Mapping) else set())
            return {k: self.value(value.get(k), unknown.get(k) if isinstance(unknown, Mapping) else None,
                                  expression.get(k) if isinstance(expression, Mapping) else None, f"{path}.{k}",
                                  module, depth + 1) for k in sorted(keys)}
        if isinstance(value, list):
            flags = unknown if isinstance(unknown, list) else [None] * len(value)
            if any(f is True for f in flags) and not any(isinstance(v, Mapping) for v in value):
                refs = self.references(expression, module) or []
                unknown_count = sum(1 for f in flags if f is True)
                queue = list(refs) if len(refs) == unknown_count else []
                return [(queue.pop(0) if queue else Unknown(f"{path}[{i}]: known after apply")) if f is True else v
                        for i, (v, f) in enumerate(zip(value, flags, strict=False))]
            blocks = expression if isinstance(expression, list) else []
            return [self.value(v, flags[i] if i < len(flags) else None, blocks[i] if i < len(blocks) else None,
                               f"{path}[{i}]", module, depth + 1) for i, v in enumerate(value)]
        if isinstance(value, str) and value:
            refs = self.references(expression, module)
            if refs is not None and len(refs) == 1 and self._names(refs[0], value):
                return refs[0]
        return value

    def _names(self, ref: Ref, value: str) -> bool:
        """Does the referenced resource's own planned id/name/ARN equal the value (a pure reference)?"""
        after = (self.changes[ref.target].get("change") or {}).get("after") or {}
        return any(after.get(key) == value for key in ("id", "name", "arn", "key_id"))

    def resources(self) -> list[tuple[str, str, dict[str, Any]]]:
        out = []
        for address, change in self.changes.items():
            body = change.get("change") or {}
            module = str(change.get("module_address") or "")
            module = f"{module}." if module else ""
            config_address = re.sub(r"\[[^\]]*\]$", "", address)
            values = self.value(body.get("after"), body.get("after_unknown"), self.expressions.get(config_address),
                                address, module)
            out.append((address, str(change.get("type")), values))
        return out


def _clean(value: Any) -> Any:
    """Terraform's "" and null for an unset attribute, and DEFAULTED, are a property not set."""
    if value is DEFAULTED or value is None or (isinstance(value, str) and value == ""):
        return None
    if isinstance(value, Mapping):
        return {k: c for k, c in ((k, _clean(v)) for k, v in value.items()) if c is not None}
    if isinstance(value, list):
        return [c for c in (_clean(v) for v in value) if c is not None]
    return value


def _first(value: Any) -> Any:
    if is_unknown(value) or isinstance(value, Ref):
        return value
    return value[0] if isinstance(value, list) and value and isinstance(value[0], Mapping) else None


def _many(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if is_unknown(value) or not isinstance(value, list) else value


Emit = Callable[[str, str, dict[str, Any], Any], None]  # (id, CloudFormation type, properties, condition)


def _rules(v: Mapping[str, Any], egress: bool, group: Any) -> list[dict[str, Any]]:
    """One aws_security_group ingress/egress block (or aws_security_group_rule) as CloudFormation rules, one per
    source, as DescribeSecurityGroupRules lists them."""
    base = {"IpProtocol": pick(v, "protocol", "ip_protocol"), "FromPort": v.get("from_port"),
            "ToPort": v.get("to_port"), "Description": v.get("description")}
    to = "Destination" if egress else "Source"
    sources = [("CidrIp", c) for c in _many(v.get("cidr_blocks"))]
    sources += [("CidrIpv6", c) for c in _many(v.get("ipv6_cidr_blocks"))]
    sources += [(f"{to}PrefixListId", c) for c in _many(v.get("prefix_list_ids"))]
    sources += [(f"{to}SecurityGroupId", c) for c in _many(v.get("security_groups"))]
    sources += [(f"{to}SecurityGroupId", v[k]) for k in ("source_security_group_id",) if v.get(k) is not None]
    sources += [("CidrIp" if k == "cidr_ipv4" else "CidrIpv6" if k == "cidr_ipv6" else f"{to}PrefixListId"
                 if k == "prefix_list_id" else f"{to}SecurityGroupId", v[k])
                for k in ("cidr_ipv4", "cidr_ipv6", "prefix_list_id", "referenced_security_group_id")
                if v.get(k) is not None]
    if v.get("self") is True:
        sources.append((f"{to}SecurityGroupId", group))
    return [{**{k: x for k, x in base.items() if x is not None}, key: source} for key, source in sources]


def _group(address: str, v: Mapping[str, Any], emit: Emit, name: Any) -> None:
    props: dict[str, Any] = {"GroupName": name, "VpcId": v.get("vpc_id"), "Tags": pick(v, "tags_all", "tags")}
    for key, egress in (("ingress", False), ("egress", True)):
        blocks = v.get(key)
        props["SecurityGroupEgress" if egress else "SecurityGroupIngress"] = blocks if is_unknown(blocks) else [
            r for b in _many(blocks) if isinstance(b, Mapping) for r in _rules(b, egress, Ref(address))]
    emit(address, "AWS::EC2::SecurityGroup", props, None)


def _routes(address: str, v: Mapping[str, Any], emit: Emit) -> None:
    routes = v.get("route")
    if is_unknown(routes):
        emit(f"{address}.route", "AWS::EC2::Route", {"RouteTableId": Ref(address)}, Unknown(
            f"{address}.route: known after apply"))
        return
    for i, route in enumerate(r for r in _many(routes) if isinstance(r, Mapping)):
        emit(f"{address}.route[{i}]", "AWS::EC2::Route", {"RouteTableId": Ref(address), **_route_props(route)}, None)


def _route_props(v: Mapping[str, Any]) -> dict[str, Any]:
    return {"DestinationCidrBlock": pick(v, "cidr_block", "destination_cidr_block"),
            "DestinationIpv6CidrBlock": pick(v, "ipv6_cidr_block", "destination_ipv6_cidr_block"),
            "GatewayId": v.get("gateway_id"), "NatGatewayId": v.get("nat_gateway_id"),
            "VpcEndpointId": v.get("vpc_endpoint_id"), "TransitGatewayId": v.get("transit_gateway_id"),
            "EgressOnlyInternetGatewayId": v.get("egress_only_gateway_id"),
            "VpcPeeringConnectionId": v.get("vpc_peering_connection_id"),
            "NetworkInterfaceId": v.get("network_interface_id")}


def _acl(address: str, v: Mapping[str, Any], emit: Emit) -> None:
    emit(address, "AWS::EC2::NetworkAcl", {"VpcId": v.get("vpc_id")}, None)
    for key, egress in (("ingress", False), ("egress", True)):
        for i, e in enumerate(b for b in _many(v.get(key)) if isinstance(b, Mapping)):
            emit(f"{address}.{key}[{i}]", "AWS::EC2::NetworkAclEntry", _acl_entry(e, Ref(address), egress), None)
    for i, subnet in enumerate(_many(v.get("subnet_ids"))):
        emit(f"{address}.subnet_ids[{i}]", "AWS::EC2::SubnetNetworkAclAssociation",
             {"SubnetId": subnet, "NetworkAclId": Ref(address)}, None)


def _acl_entry(v: Mapping[str, Any], acl: Any, egress: Any) -> dict[str, Any]:
    return {"NetworkAclId": acl, "RuleNumber": v.get("rule_no", v.get("rule_number")), "Egress": egress,
            "Protocol": v.get("protocol"), "RuleAction": v.get("action", v.get("rule_action")),
            "CidrBlock": v.get("cidr_block"), "Ipv6CidrBlock": v.get("ipv6_cidr_block"),
            "PortRange": {"From": v.get("from_port"), "To": v.get("to_port")}}


def _variants(value: Any) -> Any:
    if is_unknown(value):
        return value
    return [{"VariantName": b.get("variant_name"), "ModelName": b.get("model_name"),
             "InitialInstanceCount": b.get("initial_instance_count"), "InstanceType": b.get("instance_type"),
             "ServerlessConfig": _first(b.get("serverless_config"))} for b in _many(value) if isinstance(b, Mapping)]


def _simple(rtype: str, fields: Mapping[str, str]) -> Callable[[str, Mapping[str, Any], Emit], None]:
    def translate(address: str, v: Mapping[str, Any], emit: Emit) -> None:
        props = {cfn: v.get(tf) for cfn, tf in fields.items()}
        props["Tags"] = pick(v, "tags_all", "tags")
        emit(address, rtype, props, None)
    return translate


def _translators() -> dict[str, Callable[[str, Mapping[str, Any], Emit], None]]:
    def route_table(a: str, v: Mapping[str, Any], emit: Emit, main: bool = False) -> None:
        vpc = v.get("vpc_id")
        table = v.get("default_route_table_id")
        if main and isinstance(table, Ref):
            vpc = Ref(table.target)  # aws_vpc.x.default_route_table_id: the VPC's main table
        emit(a, "AWS::EC2::RouteTable", {"VpcId": vpc, "netguard:main": main or None,
                                         "Tags": v.get("tags_all")}, None)
        _routes(a, v, emit)

    def sg_rule(a: str, v: Mapping[str, Any], emit: Emit, egress: bool | None = None) -> None:
        egress = v.get("type") == "egress" if egress is None else egress
        rtype = "AWS::EC2::SecurityGroupEgress" if egress else "AWS::EC2::SecurityGroupIngress"
        for i, rule in enumerate(_rules(v, egress, v.get("security_group_id"))):
            emit(f"{a}[{i}]" if i else a, rtype, {"GroupId": v.get("security_group_id"), **rule}, None)

    return {
        "aws_vpc": _simple("AWS::EC2::VPC", {"CidrBlock": "cidr_block", "EnableDnsSupport": "enable_dns_support",
                                             "EnableDnsHostnames": "enable_dns_hostnames"}),
        "aws_vpc_ipv4_cidr_block_association": _simple("AWS::EC2::VPCCidrBlock", {"VpcId": "vpc_id",
                                                                                  "CidrBlock": "cidr_block"}),
        "aws_subnet": _simple("AWS::EC2::Subnet", {"VpcId": "vpc_id", "AvailabilityZone": "availability_zone",
                                                   "MapPublicIpOnLaunch": "map_public_ip_on_launch",
                                                   "CidrBlock": "cidr_block"}),
        "aws_internet_gateway": _simple("AWS::EC2::InternetGateway", {}),
        "aws_egress_only_internet_gateway": _simple("AWS::EC2::EgressOnlyInternetGateway", {"VpcId": "vpc_id"}),
        "aws_nat_gateway": _simple("AWS::EC2::NatGateway", {"SubnetId": "subnet_id"}),
        "aws_route_table": route_table,
        "aws_default_route_table": lambda a, v, emit: route_table(a, v, emit, main=True),
        "aws_route": lambda a, v, emit: emit(a, "AWS::EC2::Route", {"RouteTableId": v.get("route_table_id"),
                                                                    **_route_props(v)}, None),
        "aws_route_table_association": lambda a, v, emit: emit(a, "AWS::EC2::SubnetRouteTableAssociation", {
            "SubnetId": v.get("subnet_id"), "RouteTableId": v.get("route_table_id")}, None) if v.get(
            "subnet_id") is not None else None,
        "aws_network_acl": _acl,
        "aws_network_acl_rule": lambda a, v, emit: emit(a, "AWS::EC2::NetworkAclEntry", _acl_entry(
            v, v.get("network_acl_id"), v.get("egress")), None),
        "aws_network_acl_association": _simple("AWS::EC2::SubnetNetworkAclAssociation", {
            "SubnetId": "subnet_id", "NetworkAclId": "network_acl_id"}),
        "aws_security_group": lambda a, v, emit: _group(a, v, emit, v.get("name")),
        "aws_default_security_group": lambda a, v, emit: _group(a, v, emit, "default"),
        "aws_security_group_rule": sg_rule,
        "aws_vpc_security_group_ingress_rule": lambda a, v, emit: sg_rule(a, v, emit, False),
        "aws_vpc_security_group_egress_rule": lambda a, v, emit: sg_rule(a, v, emit, True),
        "aws_vpc_endpoint": _simple("AWS::EC2::VPCEndpoint", {
            "VpcId": "vpc_id", "ServiceName": "service_name", "VpcEndpointType": "vpc_endpoint_type",
            "PrivateDnsEnabled": "private_dns_enabled", "SecurityGroupIds": "security_group_ids",
            "SubnetIds": "subnet_ids", "RouteTableIds": "route_table_ids", "PolicyDocument": "policy"}),
        "aws_flow_log": lambda a, v, emit: emit(a, "AWS::EC2::FlowLog", {
            "ResourceId": pick(v, "vpc_id", "subnet_id", "eni_id"),
            "ResourceType": "VPC" if v.get("vpc_id") is not None else "Subnet", "TrafficType": v.get("traffic_type"),
            "LogDestinationType": v.get("log_destination_type"), "LogDestination": v.get("log_destination"),
            "LogGroupName": v.get("log_group_name")}, None),
        "aws_sagemaker_notebook_instance": _simple("AWS::SageMaker::NotebookInstance", {
            "NotebookInstanceName": "name", "DirectInternetAccess": "direct_internet_access",
            "RootAccess": "root_access", "SubnetId": "subnet_id", "SecurityGroupIds": "security_groups",
            "InstanceType": "instance_type"}),
        "aws_sagemaker_model": lambda a, v, emit: emit(a, "AWS::SageMaker::Model", {
            "ModelName": v.get("name"), "EnableNetworkIsolation": v.get("enable_network_isolation"),
            "VpcConfig": _vpc_config(_first(v.get("vpc_config"))), "Tags": v.get("tags_all")}, None),
        "aws_sagemaker_endpoint_configuration": lambda a, v, emit: emit(a, "AWS::SageMaker::EndpointConfig", {
            "EndpointConfigName": v.get("name"), "KmsKeyId": v.get("kms_key_arn"),
            "ProductionVariants": _variants(v.get("production_variants")),
            "ShadowProductionVariants": _variants(v.get("shadow_production_variants")),
            "Tags": v.get("tags_all")}, None),
        "aws_sagemaker_endpoint": _simple("AWS::SageMaker::Endpoint", {
            "EndpointName": "name", "EndpointConfigName": "endpoint_config_name"}),
        "aws_sagemaker_domain": lambda a, v, emit: emit(a, "AWS::SageMaker::Domain", {
            "DomainName": v.get("domain_name"), "AppNetworkAccessType": v.get("app_network_access_type"),
            "VpcId": v.get("vpc_id"), "SubnetIds": v.get("subnet_ids"),
            "DefaultUserSettings": _user_settings(_first(v.get("default_user_settings"))),
            "DomainSettings": _domain_settings(_first(v.get("domain_settings"))), "Tags": v.get("tags_all")}, None),
        "aws_kms_key": _simple("AWS::KMS::Key", {}),
        "aws_kms_alias": _simple("AWS::KMS::Alias", {"AliasName": "name", "TargetKeyId": "target_key_id"}),
        "aws_lambda_function": lambda a, v, emit: emit(a, "AWS::Lambda::Function", {"VpcConfig": _lambda_vpc(
            _first(v.get("vpc_config")))}, None),
    }


def _vpc_config(block: Any) -> Any:
    if block is None or is_unknown(block):
        return block
    return {"Subnets": block.get("subnets"), "SecurityGroupIds": block.get("security_group_ids")}


def _lambda_vpc(block: Any) -> Any:
    if block is None or is_unknown(block):
        return block
    return {"SubnetIds": block.get("subnet_ids"), "SecurityGroupIds": block.get("security_group_ids")}


def _user_settings(block: Any) -> Any:
    return block if block is None or is_unknown(block) else {"SecurityGroups": block.get("security_groups")}


def _domain_settings(block: Any) -> Any:
    if block is None or is_unknown(block):
        return block
    rstudio = _first(block.get("r_studio_server_pro_domain_settings"))
    if rstudio is None or is_unknown(rstudio):
        return {"RStudioServerProDomainSettings": rstudio}
    return {"RStudioServerProDomainSettings": {"DomainExecutionRoleArn": rstudio.get("domain_execution_role_arn")}}


def parse_plan(path: str, data: Mapping[str, Any]) -> Parsed:
    plan = Plan(path, data)
    parsed = Parsed(path, "terraform-plan")
    translators = _translators()

    def emit(address: str, rtype: str, props: dict[str, Any], condition: Any) -> None:
        parsed.resources[address] = Declared(address, rtype, _clean(props) or {}, None, source, condition)

    for address, source, values in plan.resources():
        translate = translators.get(source)
        if translate is not None and isinstance(values, Mapping):
            translate(address, values, emit)
    for _address, source, values in plan.resources():  # aws_main_route_table_association: the VPC's main table
        if source == "aws_main_route_table_association" and isinstance(values, Mapping):
            table = values.get("route_table_id")
            if isinstance(table, Ref) and table.target in parsed.resources:
                parsed.resources[table.target].properties["netguard:main"] = True
    return parsed
