"""The collection graph: read the resources a trigger names, the network resources they use, and what
depends on a changed shared resource, each once, users before what they use (resources.REGISTRY order).

Each type's collector and its uses are in its module of chalicelib/resources; the reads they share go
through one `Lookups` per (account, region), kept for the whole run.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from .aws import AWS_ERRORS, Clients, concurrently, error_code, error_message
from .lookups import Lookups
from .model import FLOW_LOG, ROUTE_TABLE, SUBNET, VPC, Resource, ResourceRef
from .resources import EVALUATED, REGISTRY, SAGEMAKER
from .resources.base import CollectFn

log = logging.getLogger("netguard.collect")

# The collector of each evaluated type (a dict, so that a test can stand one in for a type).
COLLECTORS: dict[str, CollectFn] = {t.type: t.collect for t in REGISTRY if t.collect is not None}
# Users before what they use, so that hints are known when the used resource is read.
ORDER = EVALUATED
_RELATED = {t.type: t.related for t in REGISTRY if t.related is not None}
_SHARED = frozenset(t.type for t in REGISTRY if not t.evaluated)


def related(resource: Resource) -> list[tuple[ResourceRef, set[str]]]:
    """What a resource uses (the network resources a SageMaker resource runs in, an endpoint's models),
    with what kind of user it is."""
    uses = _RELATED.get(resource.ref.resource_type)
    return uses(resource) if uses is not None else []


@dataclass
class Collected:
    resources: list[Resource] = field(default_factory=list)
    missing: list[ResourceRef] = field(default_factory=list)
    errors: list[tuple[ResourceRef, str]] = field(default_factory=list)


# A collector reads one resource; `hints` are what the resources that use it told us (kinds of users).



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
        A SageMaker resource whose read fails puts the region back on the index. Only when the controls
        cover every SageMaker type: a run lists only the types its controls cover."""
        if set(SAGEMAKER) <= self.types:
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
                                                if ref.resource_type not in _SHARED}
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
                    # the VPC collector builds its state as a dict, completed here with what uses the VPC
                    cast(dict[str, Any], resource.state)["Environments"] = self._vpc_environments(resource.ref, out)
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
        if vpc_id and resource.ref.resource_type in SAGEMAKER:
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
            if ref.resource_type in SAGEMAKER:  # VPC.11 no longer knows the region whole
                self._whole.discard((ref.account, ref.region))
            return None
        if resource is None:
            out.missing.append(ref)
        if self.on_progress is not None:
            self.on_progress(len(out.resources) + len(out.missing) + len(out.errors) + 1)
        return resource
