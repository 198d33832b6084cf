"""The declared resources of one file, indexed: follow a reference, find what points at a resource, and read
a property as the collectors' states hold it (ids, booleans, numbers), keeping what is unknown unknown."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Declared, Parsed, Ref
from .unknown import Unknown, is_unknown, reason_of

# Route targets whose id prefix the checks read (an internet gateway is `igw-...`).
ID_PREFIX = {"AWS::EC2::InternetGateway": "igw-", "AWS::EC2::EgressOnlyInternetGateway": "eigw-",
             "AWS::EC2::VPNGateway": "vgw-"}
# Fn::GetAtt attributes that name the resource itself (its id or ARN), by type; any type's Arn and Id too.
SELF_ATTRIBUTES = {"Arn", "Id", "GroupId", "SubnetId", "RouteTableId", "VpcId", "InternetGatewayId", "KeyId",
                   "NotebookInstanceName", "ModelName", "EndpointConfigName", "EndpointName", "DomainId", "DomainArn",
                   "NatGatewayId", "AllocationId", "FlowLogId", "NetworkAclId"}
# ... except where the attribute is another resource's id: a security group's or subnet's VpcId.
PROPERTY_ATTRIBUTES = {("AWS::EC2::SecurityGroup", "VpcId"): "VpcId", ("AWS::EC2::Subnet", "VpcId"): "VpcId",
                       ("AWS::EC2::Subnet", "AvailabilityZone"): "AvailabilityZone",
                       ("AWS::EC2::VPC", "CidrBlock"): "CidrBlock"}


class Index:
    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.by_type: dict[str, list[Declared]] = {}
        for decl in parsed.resources.values():
            self.by_type.setdefault(decl.type, []).append(decl)
        self._index: dict[tuple[str, str], tuple[dict[str, list[Declared]], list[tuple[Declared, Any]]]] = {}

    def of_type(self, resource_type: str) -> list[Declared]:
        return self.by_type.get(resource_type, [])

    def resolve_attribute(self, value: Any) -> Any:
        """A Ref to an attribute that is a property of the target (a VPC's CidrBlock, a subnet's zone) gives
        that property; an attribute known only after deploy is unknown; anything else is returned as is."""
        if not isinstance(value, Ref) or value.attribute is None:
            return value
        target = self.parsed.resources.get(value.target)
        if target is None:
            return Unknown(f"{value.target} is not declared in the file")
        prop = PROPERTY_ATTRIBUTES.get((target.type, value.attribute))
        if prop is not None:
            return self.resolve_attribute(target.properties.get(prop, Unknown(
                f"{target.id}.{prop} is not set: AWS chooses it at deploy")))
        if value.attribute in SELF_ATTRIBUTES:
            return Ref(value.target)
        return Unknown(f"{value.target}.{value.attribute} is known only after deploy")

    def follow(self, value: Any, *types: str) -> Declared | None:
        """The declared resource a value refers to, if it is one of `types` (any, without types)."""
        value = self.resolve_attribute(value)
        if isinstance(value, str) and value in self.parsed.resources:  # an id `ident` gave
            value = Ref(value)
        if not isinstance(value, Ref):
            return None
        decl = self.parsed.resources.get(value.target)
        return decl if decl is not None and (not types or decl.type in types) else None

    def ident(self, value: Any, path: str) -> Any:
        """An id as a state holds it: a declared resource's id, a literal id (an existing resource), or unknown."""
        value = self.resolve_attribute(value)
        if is_unknown(value):
            return value
        if isinstance(value, Ref):
            decl = self.parsed.resources[value.target]
            return ID_PREFIX.get(decl.type, "") + decl.id
        if isinstance(value, (str, int)):
            return str(value)
        return Unknown(f"{path} is not an id")

    def idents(self, value: Any, path: str) -> Any:
        value = self.resolve_attribute(value)
        if value is None:
            return []
        if is_unknown(value) or not isinstance(value, list):
            return value if is_unknown(value) else Unknown(f"{path} is not a list")
        return [self.ident(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def pointing_at(self, resource_type: str, prop: str, target: Declared,
                    also: tuple[str, ...] = ()) -> tuple[list[Declared], Unknown | None]:
        """The declared resources of a type whose `prop` refers to `target` (e.g. the routes of a route
        table), and, when one might but the file does not say (its `prop` or its existence is unknown),
        an Unknown saying which. Indexed once per (type, property): a file's size is not squared."""
        found: list[Declared] = []
        unsure: Unknown | None = None
        for rtype in (resource_type, *also):
            by_target, open_ones = self._pointers(rtype, prop)
            for decl in by_target.get(target.id, []):
                if decl.condition is not None:
                    unsure = decl.condition if unsure is None else unsure
                else:
                    found.append(decl)
            if open_ones and unsure is None:
                decl, value = open_ones[0]
                unsure = Unknown(f"{decl.id}.{prop}: {reason_of(value)} (it may apply to {target.id})")
        return found, unsure

    def _pointers(self, resource_type: str, prop: str) -> tuple[dict[str, list[Declared]],
                                                                 list[tuple[Declared, Any]]]:
        key = (resource_type, prop)
        if key not in self._index:
            by_target: dict[str, list[Declared]] = {}
            open_ones: list[tuple[Declared, Any]] = []
            for decl in self.of_type(resource_type):
                value = self.resolve_attribute(decl.properties.get(prop))
                if is_unknown(value):
                    open_ones.append((decl, value))
                    continue
                target = self.follow(value)
                if target is not None:
                    by_target.setdefault(target.id, []).append(decl)
            self._index[key] = (by_target, open_ones)
        return self._index[key]


def pick(values: Mapping[str, Any], *keys: str) -> Any:
    """The first of `keys` that is set (`a or b` would ask an unknown whether it is true)."""
    for key in keys:
        value = values.get(key)
        if value is not None and not (isinstance(value, str) and value == ""):
            return value
    return None


def boolean(props: Mapping[str, Any], name: str, default: bool | None, owner: str) -> Any:
    """A boolean property as AWS holds it (CloudFormation accepts "true"/"false" strings); the default when
    it is not set (None: unknown)."""
    value = props.get(name)
    if value is None:
        return default if default is not None else Unknown(f"{owner}.{name} is not set")
    if isinstance(value, bool) or is_unknown(value):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return Unknown(f"{owner}.{name} is not a boolean: {value!r}")


def number(value: Any, path: str) -> Any:
    """An integer property (CloudFormation passes parameters as strings)."""
    if value is None or is_unknown(value) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return Unknown(f"{path} is not a number: {value!r}")


def tags_of(value: Any, owner: str) -> Any:
    """Tags as the checks read them ({key: value}) from CloudFormation's [{Key, Value}] (or a map)."""
    if value is None:
        return {}
    if is_unknown(value):
        return value
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if not isinstance(value, list):
        return Unknown(f"{owner}.Tags is not a list")
    tags: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, Mapping) or is_unknown(item.get("Key")) or not isinstance(item.get("Key"), str):
            return Unknown(f"{owner}.Tags has a key the file does not give")
        tags[item["Key"]] = item.get("Value", "")
    return tags
