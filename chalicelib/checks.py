"""Named predicates: what the policy data cannot say by itself. Pure functions, no AWS calls.

A check takes a resource's state (plain data, see collect.py) and the control's parameters, and
returns a CheckResult with the evidence (the exact fields or rules that failed) and the targets a
remediation must act on (rule ids). Every check is registered explicitly in CHECKS with the
parameters it accepts, so an unknown check or parameter is a policy load error.

The checks live by concern in checks_base (shared types, plain fields, tags), checks_network (VPC,
subnets, endpoints, network ACLs, flow logs), checks_groups (security groups) and checks_sagemaker (a
SageMaker resource's own settings); this module registers them and keeps every name importable from
chalicelib.checks.
"""
from __future__ import annotations

from .checks_base import (
    INTERNET_CIDRS,
    MISSING,
    CheckFn,
    CheckSpec,
    condition_holds,
    field_equals,
    field_present,
    get_field,
    tags_present,
)
from .checks_groups import (
    DEFAULT_MAX_PUBLIC_PREFIX,
    NON_PUBLIC_RANGES,
    WORKLOAD_KINDS,
    internet_range,
    one_function,
    rule_summary,
    sg_egress_restricted,
    sg_ingress_restricted,
    sg_no_internet_ingress,
    sg_no_rules,
)
from .checks_network import (
    LIVE_ENDPOINT_STATES,
    endpoint_own_groups,
    endpoint_policy_restrictive,
    essential_endpoints,
    flow_log_all,
    internet_routes,
    live_endpoint,
    nacl_not_allow_all,
    one_environment,
    subnet_private,
    subnet_problems,
)
from .checks_sagemaker import (
    multi_instance_encryption,
    subnets_span_azs,
    variants_min_instances,
    vpc_private_subnets,
)

__all__ = [
    "CHECKS", "DEFAULT_MAX_PUBLIC_PREFIX", "INTERNET_CIDRS", "LIVE_ENDPOINT_STATES", "MISSING", "NON_PUBLIC_RANGES",
    "WORKLOAD_KINDS", "CheckFn", "CheckSpec", "condition_holds", "endpoint_own_groups", "endpoint_policy_restrictive",
    "essential_endpoints", "field_equals", "field_present", "flow_log_all", "get_field", "internet_range",
    "internet_routes", "live_endpoint", "multi_instance_encryption", "nacl_not_allow_all", "one_environment",
    "one_function", "rule_summary", "sg_egress_restricted", "sg_ingress_restricted", "sg_no_internet_ingress",
    "sg_no_rules", "subnet_private", "subnet_problems", "subnets_span_azs", "tags_present", "variants_min_instances",
    "vpc_private_subnets",
]


CHECKS: dict[str, CheckSpec] = {
    "field_equals": CheckSpec(field_equals, frozenset({"field", "expected"})),
    "field_present": CheckSpec(field_present, frozenset({"field"})),
    "subnet_private": CheckSpec(subnet_private, optional=frozenset({"subnet_field"})),
    "vpc_private_subnets": CheckSpec(vpc_private_subnets),
    "multi_instance_encryption": CheckSpec(multi_instance_encryption, optional=frozenset({"min_instances"})),
    "subnets_span_azs": CheckSpec(subnets_span_azs, optional=frozenset({"min_azs"})),
    "flow_log_all": CheckSpec(flow_log_all),
    "essential_endpoints": CheckSpec(essential_endpoints, optional=frozenset(
        {"gateway_services", "interface_services", "hosting_vpc_ids"})),
    "endpoint_own_groups": CheckSpec(endpoint_own_groups),
    "endpoint_policy_restrictive": CheckSpec(endpoint_policy_restrictive),
    "nacl_not_allow_all": CheckSpec(nacl_not_allow_all),
    "one_function": CheckSpec(one_function, optional=frozenset({"kinds"})),
    "one_environment": CheckSpec(one_environment),
    "variants_min_instances": CheckSpec(variants_min_instances, optional=frozenset({"min_instances"})),
    "tags_present": CheckSpec(tags_present, frozenset({"keys"})),
    "sg_no_internet_ingress": CheckSpec(sg_no_internet_ingress,
                                        optional=frozenset({"max_public_prefix_ipv4", "max_public_prefix_ipv6"})),
    "sg_egress_restricted": CheckSpec(sg_egress_restricted),
    "sg_no_rules": CheckSpec(sg_no_rules),
    "sg_ingress_restricted": CheckSpec(
        sg_ingress_restricted,
        optional=frozenset({"protocol", "port", "allowed_cidrs", "allowed_prefix_lists",
                            "allow_vpc_cidrs", "allow_sg_references"}),
    ),
}
