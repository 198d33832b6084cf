"""Collect: read the current state of referenced resources (read-only describe/get calls).

Each resource becomes plain data (Resource.state) that the checks read. Where things live:
- chalicelib/resources/<type>.py: how one type is read (its collector), the state fields it exposes and
  what it uses;
- lookups.Lookups: the reads resources share (subnets, route tables, VPCs, security groups and their
  users), cached for the run: per-event work depends on the resources the event names, never on the size
  of the account;
- graph.Collector: which resources to read for a trigger, each once, users before what they use.
This module keeps the names the rest of netguard imports.
"""
from __future__ import annotations

from .graph import COLLECTORS, ORDER, Collected, Collector, related
from .lookups import Lookups
from .model import NOTEBOOK
from .reads import BulkTags, classify_eni, endpoint_service, missing, normalize_rule, sagemaker_tags
from .resources.jobs import instance_count, job_view
from .resources.vpc_endpoint import private_dns_conflict, private_dns_name

__all__ = ["COLLECTORS", "ORDER", "NOTEBOOK", "BulkTags", "Collected", "Collector", "Lookups", "classify_eni",
           "endpoint_service", "instance_count", "job_view", "missing", "normalize_rule", "private_dns_conflict",
           "private_dns_name", "related", "sagemaker_tags"]
