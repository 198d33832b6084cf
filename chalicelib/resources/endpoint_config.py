"""SageMaker endpoint configurations: the variants (models, instance counts) an endpoint serves, and the KMS
key that encrypts the ML storage volumes of its instances (EP.3)."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..aws import error_code
from ..model import ENDPOINT_CONFIG, Resource, ResourceRef
from ..reads import describe_or_none, sagemaker_tags_of
from .base import SAGEMAKER_NAME_RE, TAG_FIELDS, Listing, ResourceType


def variants(config: dict[str, Any], key: str = "ProductionVariants") -> list[dict[str, Any]]:
    return [{k: v[k] for k in ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType") if k in v}
            | {"Serverless": "ServerlessConfig" in v} for v in config.get(key) or []]


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    config = describe_or_none(lambda: lookups.sagemaker.describe_endpoint_config(EndpointConfigName=ref.resource_id))
    if config is None:
        return None
    key = config.get("KmsKeyId") or None
    state = {"EndpointConfigName": config["EndpointConfigName"], "ProductionVariants": variants(config),
             "KmsKeyId": key, "KmsKeyManager": key_manager(lookups, key) if key else "none"}
    arn = config["EndpointConfigArn"]
    return Resource(ref, arn, state, sagemaker_tags_of(lookups, arn))


# Who manages a key never changes (KMS KeyManager): answers are kept for the process, by key ARN or id (an
# alias can be pointed at another key: never kept). Bounded: a sweep meets a handful of keys.
_KEY_MANAGERS: dict[tuple[str, str, str], str] = {}
_KEY_MANAGERS_MAX = 1024


def key_manager(lookups: Any, key_id: str) -> str:
    """CUSTOMER or AWS (KMS DescribeKey's KeyManager) for the key an endpoint configuration names; an
    AWS managed key's alias (alias/aws/...) is AWS and another account's key CUSTOMER without a call; a key
    gone is "missing"."""
    if key_id.startswith("alias/aws/") or ":alias/aws/" in key_id:
        return "AWS"
    parts = key_id.split(":")
    if len(parts) > 5 and parts[4] != lookups.account:
        return "CUSTOMER"  # another account's key: AWS managed keys cannot be used across accounts
    cache_key = (lookups.account, lookups.region, key_id)
    if cache_key in _KEY_MANAGERS:
        return _KEY_MANAGERS[cache_key]
    try:
        answer = lookups.clients.client("kms", lookups.region, lookups.account).describe_key(KeyId=key_id)
    except ClientError as exc:
        if error_code(exc) == "NotFoundException":
            return "missing"
        raise
    manager = str(answer["KeyMetadata"].get("KeyManager", "unknown"))
    if "alias/" not in key_id and len(_KEY_MANAGERS) < _KEY_MANAGERS_MAX:
        _KEY_MANAGERS[cache_key] = manager
    return manager


TYPE = ResourceType(
    type=ENDPOINT_CONFIG, service="sagemaker", arn_resource="endpoint-config", id_pattern=SAGEMAKER_NAME_RE,
    api_calls=("CreateEndpointConfig",), name_fields={"CreateEndpointConfig": "endpointConfigName"},
    listing=Listing(lambda sagemaker: sagemaker.get_paginator("list_endpoint_configs"), "EndpointConfigs",
                    "EndpointConfigName"),
    config_recorded=True, reads=("sagemaker:DescribeEndpointConfig",),
    extra_reads=({"Sid": "ReadEndpointConfigKeys", "Effect": "Allow", "Action": "kms:DescribeKey",
                  "Resource": "arn:aws:kms:*:*:key/*"},),
    state_fields=frozenset({"EndpointConfigName", "ProductionVariants", "KmsKeyId", "KmsKeyManager"}) | TAG_FIELDS,
    collect=collect,
)
