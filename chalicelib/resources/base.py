"""What netguard knows about one resource type, as one value: the unit of extension.

A `ResourceType` says how the type is named (CloudFormation/Config type, ARN form, id pattern), which
events name it (CloudTrail calls and where their request names it, its native state-change event),
how a scan lists it, whether AWS Config records it, what netguard may read of it (IAM statements),
the state fields its collector exposes (what controls may test), how it is read and what it uses.
Each type lives in its own module of this package; `chalicelib.resources` holds the registry.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model import SECURITY_GROUP, SUBNET, VPC, Resource, ResourceRef
from ..reads import (  # noqa: F401 - the kinds of users, re-exported for the resource modules
    USED_BY_ENDPOINT,
    USED_BY_NOTEBOOK,
    USED_BY_OTHER,
    USED_BY_SAGEMAKER,
    USED_BY_STUDIO,
    USED_BY_TRAINING,
    USED_BY_VPC_ENDPOINT,
)

if TYPE_CHECKING:
    from ..lookups import Lookups

# The whole string (\Z: `$` also matches before a final newline).
SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")
DOMAIN_ID_RE = re.compile(r"^d-(-*[a-z0-9]){1,61}\Z")


def ec2_id_re(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{prefix}-[0-9a-f]{{8,17}}\Z")


# A collector reads one resource; `hints` are what the resources that use it told us (kinds of users).
CollectFn = Callable[["Lookups", ResourceRef, frozenset], "Resource | None"]
# What a resource uses (security groups, subnets, its VPC; an endpoint's models), with the kinds of user it is.
RelatedFn = Callable[[Resource], "list[tuple[ResourceRef, set[str]]]"]
# Where a CloudTrail record names the type's resources, for types whose calls do not name them in one
# request field: (event name, request, response) -> the values found (triggers checks each is an id).
CallRefsFn = Callable[[str, Mapping[str, Any], Mapping[str, Any]], "list[Any]"]


@dataclass(frozen=True)
class StateChange:
    """A native EventBridge event about the type: its detail-type, where it names the resource and its
    status, and the statuses in which netguard has something to do."""

    detail_type: str
    name_field: str
    status_field: str
    statuses: tuple[str, ...]


@dataclass(frozen=True)
class Listing:
    """How a scan or sweep lists the type: `pages(client)` is the paginator (named with a literal operation
    so that the IAM coverage test reads it), `key` the list in each page, `id_field` the id of each item,
    `params` the filter (running jobs only). `expand(client, item)`, when set, gives the ids an item stands
    for instead (a file system's mount targets). `since_param`, when set, is the list's parameter that gives
    the items created after a time whatever their state (jobs: CreationTimeAfter): `ids_since` lists those,
    so that what ran recently (a finished job) is evaluated too, without listing all history."""

    pages: Callable[[Any], Any]
    key: str
    id_field: str
    params: Mapping[str, Any] = field(default_factory=dict)
    expand: Callable[[Any, Mapping[str, Any]], list[str]] | None = None
    since_param: str | None = None

    def ids(self, client: Any, params: Mapping[str, Any] | None = None) -> list[str]:
        params = self.params if params is None else params
        items = [item for page in self.pages(client).paginate(**params) for item in page.get(self.key, [])]
        if self.expand is None:
            return [item[self.id_field] for item in items]
        return [i for item in items for i in self.expand(client, item)]

    def ids_since(self, client: Any, since: dt.datetime) -> list[str]:
        """What `ids` lists, and the items created after `since` in any state (the type has a
        `since_param`; else just `ids`): each once, the current ones first."""
        current = self.ids(client)
        if self.since_param is None:
            return current
        return list(dict.fromkeys(current + self.ids(client, {self.since_param: since})))


@dataclass(frozen=True)
class ResourceType:
    type: str  # the CloudFormation / AWS Config type, AWS::Service::Thing
    service: str  # the boto3 service that reads it: "sagemaker" | "ec2" | "efs"
    arn_resource: str  # arn:aws:<service>:<region>:<account>:<arn_resource>/<id>
    id_pattern: re.Pattern[str]  # what a valid id (SageMaker name, domain id, EC2 id) looks like
    # CloudTrail calls (event names) that can introduce a violation, and for SageMaker calls the
    # request field naming the resource; other calls go through `call_refs`, else every id matching
    # `id_pattern` in the request (or the response of a Create*) is the resource.
    api_calls: tuple[str, ...] = ()
    name_fields: Mapping[str, str] = field(default_factory=dict)
    call_refs: CallRefsFn | None = None
    state_change: StateChange | None = None
    listing: Listing | None = None  # SageMaker types; EC2 types come from Lookups.prime
    config_recorded: bool = False  # AWS Config records it (the custom rule can be invoked on it)
    # IAM actions reading it needs on its own ARNs, and other statements it needs (on top of the shared
    # lookups', chalicelib/lookups.py READ_STATEMENTS): the Lambda role and the member role are built from them
    reads: tuple[str, ...] = ()
    extra_reads: tuple[Mapping[str, Any], ...] = ()
    state_fields: frozenset[str] = frozenset()  # top-level keys of Resource.state (what controls may test)
    collect: CollectFn | None = None  # None: a shared resource that is never evaluated itself
    related: RelatedFn | None = None
    # shared resources (route tables, flow logs): the types whose resources a change to one re-evaluates
    dependents: tuple[str, ...] = ()
    # tagging calls (TAG.1, exemption tags) name it: ec2 ids in CreateTags/DeleteTags, SageMaker ARNs
    taggable: bool = True
    # the service's name in ARNs, IAM actions and event sources when it is not the boto3 one
    # (efs: elasticfilesystem)
    namespace: str = ""

    @property
    def aws_namespace(self) -> str:
        return self.namespace or self.service

    @property
    def event_source(self) -> str:
        """Its EventBridge source (aws.<namespace>): CloudTrail names it <namespace>.amazonaws.com."""
        return f"aws.{self.aws_namespace}"

    @property
    def evaluated(self) -> bool:
        return self.collect is not None

    @property
    def short_name(self) -> str:
        return self.type.rsplit("::", 1)[-1]

    def arn(self, region: str, account: str, resource_id: str) -> str:
        return f"arn:aws:{self.aws_namespace}:{region}:{account}:{self.arn_resource}/{resource_id}"

    @property
    def arn_pattern(self) -> str:
        """Its ARNs in any account and region, as IAM matches them."""
        return self.arn("*", "*", "*")


def in_vpc(lookups: Lookups, state: dict[str, Any], subnets: list[str]) -> None:
    """Add the subnet views and their zones, for the private-subnet and zone-span checks."""
    state["SubnetViews"] = [lookups.subnet_view(s) for s in subnets]
    state["AvailabilityZones"] = sorted({v["AvailabilityZone"] for v in state["SubnetViews"]
                                         if v and v.get("AvailabilityZone")})


IN_VPC_FIELDS = frozenset({"SubnetViews", "AvailabilityZones"})
TAG_FIELDS = frozenset({"Tags"})  # checks read tags as the `Tags` field (TAG.1)


def network_uses(ref: ResourceRef, kinds: set[str], groups: list[str], subnets: list[str],
                 vpc_id: str | None) -> list[tuple[ResourceRef, set[str]]]:
    """What a SageMaker resource uses in the network: its security groups and subnets (as `kinds` of
    user), and its VPC (as a SageMaker user)."""
    out = [(ResourceRef(SECURITY_GROUP, g, ref.account, ref.region), kinds) for g in groups]
    out += [(ResourceRef(SUBNET, s, ref.account, ref.region), kinds) for s in subnets]
    if vpc_id:
        out.append((ResourceRef(VPC, vpc_id, ref.account, ref.region), {USED_BY_SAGEMAKER}))
    return out


def vpc_uses(resource: Resource, kind: str) -> list[tuple[ResourceRef, set[str]]]:
    """network_uses of a resource whose state has a VpcConfig (jobs, models, domains) and SubnetViews."""
    vpc_config = resource.state.get("VpcConfig") or {}
    vpc_id = next((s.get("VpcId") for s in resource.state.get("SubnetViews", []) if s), None)
    return network_uses(resource.ref, {kind, USED_BY_SAGEMAKER}, vpc_config.get("SecurityGroupIds", []),
                        vpc_config.get("Subnets", []), vpc_id)
