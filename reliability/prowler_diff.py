"""Independent agreement: netguard's read-only scan and Prowler on the same random moto worlds.

    .venv/bin/python reliability/prowler_diff.py --worlds 20 --seed 1 [--expect-explained] [--probes]

Each world is a fresh moto server (a `BenchServer` of benchmarks/motoserver.py, in its own process, with
netguard_testkit's AWS-like SageMaker patches: training jobs start InProgress as on AWS) holding one
network (netguard_testkit.world.build_network) and a random mix of notebooks, training jobs, models,
endpoint configurations, security groups, VPC endpoints and plain network interfaces whose settings are
drawn independently (RootAccess apart from DirectInternetAccess, isolation apart from VPC, single,
multi-instance and heterogeneous-cluster jobs, ingress from 0.0.0.0/0, ::/0, 10.0.0.0/8, 0.0.0.0/1, a
prefix list, a group reference, egress to everywhere...). Both tools then read that server:

    netguard   .venv/bin/netguard scan --region us-east-1 --format json
    Prowler    .venv-prowler/bin/prowler aws --region us-east-1 --checks <the 10 shared checks>
                 -M json-ocsf -o DIR -F NAME --no-banner --no-color --ignore-exit-code-3
                 --log-level ERROR --log-file DIR/prowler.log

Every Prowler finding is mapped to (netguard control, resource id) through CHECKS and the last part of
its resource ARN, and compared with netguard's finding for the same pair. A pair both tools report is
a shared verdict; they agree when netguard's NON_COMPLIANT meets Prowler's FAIL, or netguard's
COMPLIANT or NOT_APPLICABLE meets PASS (neither reports a violation). Everything else (NOT_APPLICABLE
against FAIL, MANUAL...) is a disagreement, printed with both tools' evidence and matched against
KINDS: the disagreements understood, each with whose reading is right and the source. Pairs only one
tool reports (finished jobs, which netguard's scan skips; groups no interface uses, which Prowler
skips) are counted apart, not compared. The figures are printed, never asserted: the exit status is
0 unless the harness itself fails (2), or, with --expect-explained, 1 if a disagreement matches no
kind. `--probes` adds probes() (a resource per known kind, and agreeing ones for every control) to every world:
tests/e2e/test_prowler_agreement.py uses it so that each kind is exercised on every run.

Prowler against moto, the smallest set that works (Prowler 5.46.0, moto 5.2.5):
  * AWS_ENDPOINT_URL=<server>, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY set to anything,
    AWS_DEFAULT_REGION=us-east-1: botocore (1.40 in Prowler's venv) sends every service to the
    server. moto answers what Prowler asks before scanning (sts:GetCallerIdentity,
    ec2:DescribeRegions; organizations:DescribeAccount answers AccountNotFound, which Prowler logs as
    a warning and goes on with). No profile, no role, no --organizations-role.
  * --region us-east-1 (else Prowler scans every region DescribeRegions lists) and --checks with the
    ten shared checks only (Prowler's services still read everything their service objects read, e.g.
    every EC2 describe call for the security-group check).
  * --ignore-exit-code-3 (Prowler exits 3 when there is a FAIL), --no-banner, --no-color; no
    compliance output is asked for: -M json-ocsf writes one JSON file of OCSF findings.
  * Prowler's default configuration and mutelist (nothing in them applies to these checks, but
    `ec2_allowed_interface_types`, see the SG.1 kinds), and no --scan-unused-services: a group no
    network interface uses is not reported, as Prowler users see it.
  * ProwlerShim (below) answers five operations Prowler's service objects call and moto 5.2.5 does not
    implement (HTTP 500): ec2 GetSnapshotBlockPublicAccessState, GetImageBlockPublicAccessState,
    GetInstanceMetadataDefaults, DescribeClientVpnEndpoints and sagemaker ListMonitoringSchedules,
    with what AWS answers for an account that never set them. None feeds a shared check; answered,
    Prowler logs no error at all, so the harness fails on any ERROR line in Prowler's log (an error in
    a read a shared check depends on would silently turn into a FAIL or PASS).
  * The server runs with MOTO_EC2_LOAD_DEFAULT_AMIS=false: moto otherwise owns a snapshot per default
    AMI and Prowler's EC2 service asks for each one's attributes (1,301 calls per run).
  A run of Prowler costs 20-37 s on this machine (2 cores), most of it Prowler's own start (loading
  every compliance framework and every provider's modules), whatever the size of the world; building
  a world, starting its server and netguard's scan take about 2 s each.

Why a BenchServer and not moto's ThreadedMotoServer in this process: every world needs a fresh moto
state (a ThreadedMotoServer in one process shares moto's global backends between worlds), the AWS-like
SageMaker patches must apply to the server both tools talk to, and BenchServer does both and is what
the Custodian benchmark uses. ProwlerServer only adds the shim and the environment above.

What moto cannot hold, and so no world has: rules of protocols other than tcp, udp, icmp and -1
(moto 5.2.5 answers 500 to AuthorizeSecurityGroupIngress with IpProtocol "50"); the network interfaces
SageMaker creates for notebooks and running jobs, which are simulated (moto creates none) with
create_network_interface, in the notebook's subnet or the job's first subnet.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.motoserver import BenchServer, Counting, _tags_of_one_resource, operation  # noqa: E402

REGION = "us-east-1"
NETGUARD = ROOT / ".venv" / "bin" / "netguard"
PROWLER = ROOT / ".venv-prowler" / "bin" / "prowler"

# netguard control -> the Prowler check that decides the same question (ids from `prowler aws --list-checks`).
CHECKS: dict[str, str] = {
    "NB.1": "sagemaker_notebook_instance_without_direct_internet_access_configured",
    "NB.2": "sagemaker_notebook_instance_vpc_settings_configured",
    "NB.4": "sagemaker_notebook_instance_root_access_disabled",
    "JOB.1": "sagemaker_training_jobs_network_isolation_enabled",
    "JOB.2": "sagemaker_training_jobs_vpc_settings_configured",
    "JOB.3": "sagemaker_training_jobs_intercontainer_encryption_enabled",
    "MD.1": "sagemaker_models_network_isolation_enabled",
    "MD.2": "sagemaker_models_vpc_settings_configured",
    "EP.1": "sagemaker_endpoint_config_prod_variant_instances",
    "SG.1": "ec2_securitygroup_allow_ingress_from_internet_to_any_port",
}
CONTROL_OF_CHECK = {check: control for control, check in CHECKS.items()}
# Which kind of resource each control is about (the key of a world's facts).
RESOURCE_KIND = {"NB.1": "notebook", "NB.2": "notebook", "NB.4": "notebook", "JOB.1": "job", "JOB.2": "job",
                 "JOB.3": "job", "MD.1": "model", "MD.2": "model", "EP.1": "endpoint_config", "SG.1": "group"}

COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE = "COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE"
AGREE = {(NON_COMPLIANT, "FAIL"), (COMPLIANT, "PASS"), (NOT_APPLICABLE, "PASS")}


class HarnessError(RuntimeError):
    """The comparison itself could not be made (a tool failed, a finding could not be mapped...)."""


# --- what the tools said ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    status: str
    detail: Any  # netguard: the evidence; Prowler: status_extended


def resource_id(arn_or_id: str) -> str:
    """The id both tools can be matched on: the last part of an ARN (notebook, job, model and
    endpoint-configuration names; sg-...), lower-cased (SageMaker names are case-insensitive)."""
    return arn_or_id.rsplit("/", 1)[-1].lower()


def netguard_verdicts(report: Mapping[str, Any]) -> dict[tuple[str, str], Verdict]:
    """(control, resource id) -> verdict, for the shared controls, from `netguard scan --format json`."""
    out: dict[tuple[str, str], Verdict] = {}
    for row in report["findings"]:
        if row["control"] not in CHECKS:
            continue
        key = (row["control"], resource_id(row["resource_id"]))
        if key in out:
            raise HarnessError(f"netguard reported {key} twice")
        out[key] = Verdict(row["status"], row.get("evidence"))
    return out


def prowler_verdicts(findings: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Verdict]:
    """(control, resource id) -> verdict, from Prowler's json-ocsf findings of the shared checks."""
    out: dict[tuple[str, str], Verdict] = {}
    for finding in findings:
        check = finding["metadata"]["event_code"]
        if check not in CONTROL_OF_CHECK:
            raise HarnessError(f"Prowler ran a check that was not asked for: {check}")
        resources = finding.get("resources") or []
        if len(resources) != 1:
            raise HarnessError(f"a {check} finding names {len(resources)} resources")
        key = (CONTROL_OF_CHECK[check], resource_id(resources[0]["uid"]))
        if key in out:
            raise HarnessError(f"Prowler reported {key} twice")
        out[key] = Verdict(finding["status_code"], finding.get("status_detail") or finding.get("message"))
    return out


def agrees(netguard_status: str, prowler_status: str) -> bool:
    return (netguard_status, prowler_status) in AGREE


# --- explained disagreements -----------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """A disagreement understood: which control, which statuses, on which resources (a predicate on the
    world's facts about the resource: what the harness created, not what either tool said), whose
    reading of AWS is right, why, and the source."""
    id: str
    control: str
    netguard: tuple[str, ...]
    prowler: tuple[str, ...]
    when: Callable[[Mapping[str, Any]], bool]
    whose: str  # "netguard": netguard reads AWS right, Prowler does not; "definition": the two controls
    #             ask different questions; "moto": moto answers otherwise than AWS would
    reason: str
    source: str


def _open(facts: Mapping[str, Any]) -> bool:
    return bool(facts.get("open"))


KINDS: tuple[Kind, ...] = (
    Kind("JOB.3-single-instance", "JOB.3", (NOT_APPLICABLE,), ("FAIL",),
         lambda f: f["instances"] == 1 and not f["encryption"], "netguard",
         "one instance has no inter-container traffic to encrypt; Prowler's check ignores the instance count "
         "and FAILs every job without the flag",
         "botocore sagemaker CreateTrainingJob.EnableInterContainerTrafficEncryption ('all communications "
         "between ML compute instances in distributed training'); Prowler 5.46.0 "
         "sagemaker_training_jobs_intercontainer_encryption_enabled.py"),
    Kind("JOB.2-public-subnet", "JOB.2", (NON_COMPLIANT,), ("PASS",),
         lambda f: f["vpc"] == "public", "definition",
         "netguard's JOB.2 wants private subnets only (no default route to an internet gateway); Prowler's "
         "check only asks that VpcConfig.Subnets be non-empty",
         "policies/jobs.toml JOB.2; Prowler 5.46.0 sagemaker_training_jobs_vpc_settings_configured.py"),
    Kind("MD.2-public-subnet", "MD.2", (NON_COMPLIANT,), ("PASS",),
         lambda f: f["vpc"] == "public", "definition",
         "netguard's MD.2 wants private subnets only; Prowler's check only asks for a non-empty "
         "VpcConfig.Subnets",
         "policies/hosting.toml MD.2; Prowler 5.46.0 sagemaker_models_vpc_settings_configured.py"),
    Kind("MD.2-subnet-gone", "MD.2", (NON_COMPLIANT,), ("PASS",),
         lambda f: f["vpc"] == "gone", "definition",
         "the model's VpcConfig names a subnet that no longer exists: netguard cannot show it private and "
         "reports it (evidence 'subnet not found'); Prowler only asks for a non-empty VpcConfig.Subnets",
         "chalicelib/checks_sagemaker.py vpc_private_subnets; "
         "Prowler 5.46.0 sagemaker_models_vpc_settings_configured.py"),
    Kind("EP.1-serverless-variant", "EP.1", (NOT_APPLICABLE, COMPLIANT), ("FAIL",),
         lambda f: f["serverless"] > 0 and all(c >= 2 for c in f["instance_counts"]), "netguard",
         "a serverless variant has no instances (no InitialInstanceCount); Prowler reads the missing count "
         "as 0 and FAILs it, where AWS Config's rule fails only a count equal to 1",
         "AWS Config sagemaker-endpoint-config-prod-instance-count ('NON_COMPLIANT if ... "
         "InitialInstanceCount is equal to 1'); Prowler 5.46.0 sagemaker_service.py "
         "_describe_endpoint_config (get('InitialInstanceCount', 0)) and the check's '<= 1'"),
    Kind("NB.4-root-access-not-returned", "NB.4", (NON_COMPLIANT,), ("PASS",),
         lambda f: f["root_access"] is None, "moto",
         "created without RootAccess: AWS defaults it to Enabled and returns it, moto 5.2.5 returns no "
         "RootAccess; netguard reads 'not Disabled' (NON_COMPLIANT), Prowler reads a missing field as "
         "disabled (PASS) -- on AWS both would FAIL it",
         "botocore sagemaker CreateNotebookInstance.RootAccess ('The default value is Enabled'); moto "
         "sagemaker/models.py (root_access None); Prowler 5.46.0 sagemaker_service.py "
         "_describe_notebook_instance (root_access set only when 'Enabled')"),
    Kind("SG.1-not-sagemaker", "SG.1", (NOT_APPLICABLE,), ("FAIL",),
         lambda f: _open(f) and f["users"] == ["other"], "definition",
         "netguard's SG.1 covers groups of SageMaker resources and VPC endpoints only; Prowler's check "
         "covers every group a network interface uses",
         "policies/security-groups.toml SG.1 applies_when; Prowler 5.46.0 "
         "ec2_securitygroup_allow_ingress_from_internet_to_any_port.py"),
    Kind("SG.1-vpc-endpoint-interfaces", "SG.1", (NON_COMPLIANT,), ("PASS",),
         lambda f: _open(f) and f["interfaces"] == ["vpc-endpoint"], "definition",
         "Prowler passes an open group whose interfaces are all of an allowed type (config "
         "ec2_allowed_interface_types: api_gateway_managed, vpc_endpoint); netguard's SG.1 includes VPC "
         "endpoint groups on purpose",
         "Prowler 5.46.0 ec2_securitygroup_allow_ingress_from_internet_to_any_port.py check_enis and "
         "config/config.yaml; policies/security-groups.toml SG.1"),
    Kind("SG.1-wide-public-range", "SG.1", (NON_COMPLIANT,), ("PASS",),
         lambda f: f["wide"] and not _open(f), "definition",
         "netguard's SG.1 counts a public range wider than /16 (IPv6 /32) as the internet (0.0.0.0/1 and "
         "128.0.0.0/1 are 0.0.0.0/0); Prowler's any-port check matches only 0.0.0.0/0 and ::/0 (its "
         "ec2_securitygroup_allow_wide_open_public_ipv4 covers /1 to /23)",
         "policies/security-groups.toml SG.1 (max_public_prefix_ipv4/ipv6); Prowler 5.46.0 "
         "ec2/lib/security_groups.py _is_cidr_public(any_address=True)"),
    Kind("SG.1-prefix-list-of-the-internet", "SG.1", (NON_COMPLIANT,), ("PASS",),
         lambda f: f["prefix_list"] and not _open(f) and not f["wide"], "netguard",
         "a rule from a customer-managed prefix list holding 0.0.0.0/0 admits the internet: netguard reads the "
         "list's entries (GetManagedPrefixListEntries); Prowler's check reads only the rule's own IpRanges",
         "EC2 API reference AuthorizeSecurityGroupIngress PrefixListIds and GetManagedPrefixListEntries; "
         "chalicelib/lookups.py Lookups.prefix_list_cidrs; Prowler 5.46.0 "
         "ec2_securitygroup_allow_ingress_from_internet_to_any_port.py (ip_ranges / ipv6_ranges only)"),
)


def explain(control: str, netguard_status: str, prowler_status: str, facts: Mapping[str, Any] | None) -> Kind | None:
    if facts is None:
        return None
    for kind in KINDS:
        if (kind.control == control and netguard_status in kind.netguard and prowler_status in kind.prowler
                and kind.when(facts)):
            return kind
    return None


# --- comparison ------------------------------------------------------------------------------------

@dataclass
class Pair:
    world: int
    control: str
    resource: str
    netguard: Verdict | None
    prowler: Verdict | None
    facts: Mapping[str, Any] | None
    kind: Kind | None = None

    @property
    def shared(self) -> bool:
        return self.netguard is not None and self.prowler is not None

    @property
    def agreed(self) -> bool:
        return self.shared and agrees(self.netguard.status, self.prowler.status)  # type: ignore[union-attr]


def compare(world: int, netguard: Mapping[tuple[str, str], Verdict], prowler: Mapping[tuple[str, str], Verdict],
            facts: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[Pair]:
    """Every (control, resource) either tool reported; disagreements matched against KINDS."""
    pairs = []
    for key in sorted(set(netguard) | set(prowler)):
        control, rid = key
        pair = Pair(world, control, rid, netguard.get(key), prowler.get(key),
                    facts.get(RESOURCE_KIND[control], {}).get(rid))
        if pair.shared and not pair.agreed:
            pair.kind = explain(control, pair.netguard.status, pair.prowler.status, pair.facts)  # type: ignore[union-attr]
        pairs.append(pair)
    return pairs


@dataclass
class Tally:
    shared: int = 0
    agreed: int = 0
    na_pass: int = 0  # of the agreements: netguard NOT_APPLICABLE, Prowler PASS
    explained: int = 0
    only_netguard: int = 0
    only_prowler: int = 0

    @property
    def disagreed(self) -> int:
        return self.shared - self.agreed


def tally(pairs: Iterable[Pair]) -> dict[str, Tally]:
    out = {control: Tally() for control in CHECKS}
    for pair in pairs:
        t = out[pair.control]
        if pair.shared:
            t.shared += 1
            t.agreed += pair.agreed
            t.na_pass += pair.agreed and pair.netguard.status == NOT_APPLICABLE  # type: ignore[union-attr]
            t.explained += (not pair.agreed) and pair.kind is not None
        elif pair.netguard is not None:
            t.only_netguard += 1
        else:
            t.only_prowler += 1
    return out


# --- worlds ----------------------------------------------------------------------------------------

# Ingress rules a group may get (several, drawn at random), with how far the source reaches:
# "internet" (0.0.0.0/0 or ::/0: what Prowler's any-port check looks for), "wide" (public address space
# wider than a /16, or a /32 for IPv6: netguard's SG.1 counts it as the internet since 68cc2bf),
# "prefix-list" (a customer-managed prefix list that holds 0.0.0.0/0: netguard's SG.1 reads its entries),
# "narrow" (private ranges, a public /24, another group). Group and prefix-list references are resolved
# when the world is built.
INGRESS: dict[str, tuple[str, dict[str, Any]]] = {
    "ssh-from-0.0.0.0/0": ("internet", {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    "https-from-::/0": ("internet", {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                     "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}),
    "all-from-0.0.0.0/0": ("internet", {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    "all-tcp-from-0.0.0.0/0": ("internet", {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                                            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    "dns-udp-from-0.0.0.0/0": ("internet", {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
                                            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    "icmp-from-0.0.0.0/0": ("internet", {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
                                         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    "https-from-0.0.0.0/1": ("wide", {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                      "IpRanges": [{"CidrIp": "0.0.0.0/1"}]}),
    "ssh-from-8.0.0.0/8": ("wide", {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                    "IpRanges": [{"CidrIp": "8.0.0.0/8"}]}),
    "https-from-2600::/16": ("wide", {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                      "Ipv6Ranges": [{"CidrIpv6": "2600::/16"}]}),
    "https-from-10.0.0.0/8": ("narrow", {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                         "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}),
    "all-from-172.16.0.0/12": ("narrow", {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "172.16.0.0/12"}]}),
    "https-from-a-public-/24": ("narrow", {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                           "IpRanges": [{"CidrIp": "52.95.0.0/24"}]}),
    "ssh-from-prefix-list-of-0.0.0.0/0": ("prefix-list", {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                     "PrefixListIds": [{"PrefixListId": "{prefix_list}"}]}),
    "all-from-another-group": ("narrow", {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "{peer_group}"}]}),
}
EGRESS = {"all-to-::/0": {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}}
ENDPOINT_SERVICES = ("kms", "secretsmanager", "ssm", "monitoring", "ec2", "sns")


def random_world(rng: random.Random, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """A world as plain data: every setting drawn independently of the others."""
    groups = [{"name": f"{prefix}-sg-{i:02d}",
               "ingress": rng.sample(sorted(INGRESS), rng.randint(0, 3)),
               "egress": ["all-to-::/0"] if rng.random() < 0.3 else [],
               "keep_default_egress": rng.random() < 0.6}
              for i in range(rng.randint(8, 12))]
    names = [g["name"] for g in groups]

    def some_groups() -> list[str]:
        return rng.sample(names, rng.randint(1, 2))

    notebooks = []
    for i in range(rng.randint(6, 10)):
        subnet = rng.choice([None, "private", "private", "public"])
        # AWS accepts DirectInternetAccess=Disabled only with a SubnetId (CreateNotebookInstance).
        direct = rng.choice(["Enabled", "Disabled", None] if subnet else ["Enabled", None])
        notebooks.append({"name": f"{prefix}-nb-{i:02d}", "subnet": subnet, "direct_internet": direct,
                          "root_access": rng.choice(["Enabled", "Disabled", None]),
                          "groups": some_groups() if subnet else []})
    jobs = []
    for i in range(rng.randint(8, 12)):
        shape = rng.choice(["single", "multi", "groups"])
        vpc = rng.choice([None, "private", "public"])
        jobs.append({"name": f"{prefix}-job-{i:02d}", "isolation": rng.random() < 0.5, "vpc": vpc,
                     "instance_count": {"single": 1, "multi": rng.randint(2, 4)}.get(shape),
                     "instance_groups": ([rng.randint(1, 2) for _ in range(rng.randint(1, 2))] if shape == "groups"
                                         else None),
                     "encryption": rng.choice([True, False, None]), "groups": some_groups() if vpc else [],
                     "stop": rng.random() < 0.2})
    models = []
    for i in range(rng.randint(5, 8)):
        # "gone": its subnet was deleted after the model was made (a model has no network interface to
        # keep the subnet alive; only a deployed endpoint has)
        vpc = rng.choice([None, "private", "private", "public", "gone"])
        models.append({"name": f"{prefix}-model-{i:02d}", "isolation": rng.choice([True, False, None]), "vpc": vpc,
                       "groups": some_groups() if vpc else []})
    configs = []
    for i in range(rng.randint(4, 7)):
        count = rng.randint(1, 3)
        serverless_at = rng.randrange(count) if rng.random() < 0.35 else None  # at most one serverless variant
        configs.append({"name": f"{prefix}-epc-{i:02d}",
                        "variants": [{"serverless": True} if v == serverless_at
                                     else {"serverless": False, "count": rng.choice([1, 1, 2, 3])}
                                     for v in range(count)]})
    endpoints = [{"service": service, "groups": some_groups()}
                 for service in rng.sample(ENDPOINT_SERVICES, rng.randint(1, 3))]
    interfaces = [{"groups": some_groups()} for _ in range(rng.randint(1, 3))]
    return {"groups": groups, "notebooks": notebooks, "jobs": jobs, "models": models,
            "endpoint_configs": configs, "endpoints": endpoints, "interfaces": interfaces}


def probes(prefix: str) -> dict[str, list[dict[str, Any]]]:
    """For every kind of KINDS a resource that shows it, and for every shared control resources both
    tools should agree on, violation and none, so that a world exercises each whatever the draw (the
    test uses them)."""
    p = f"{prefix}-probe"
    return {
        "groups": [{"name": f"{p}-sg-other", "ingress": ["ssh-from-0.0.0.0/0"], "egress": [],
                    "keep_default_egress": True},
                   {"name": f"{p}-sg-vpce", "ingress": ["https-from-::/0"], "egress": [], "keep_default_egress": True},
                   {"name": f"{p}-sg-nb", "ingress": ["all-from-0.0.0.0/0"], "egress": [],
                    "keep_default_egress": False},
                   {"name": f"{p}-sg-wide", "ingress": ["https-from-0.0.0.0/1", "https-from-10.0.0.0/8"], "egress": [],
                    "keep_default_egress": True},
                   {"name": f"{p}-sg-listed", "ingress": ["ssh-from-prefix-list-of-0.0.0.0/0"], "egress": [],
                    "keep_default_egress": True}],
        "notebooks": [{"name": f"{p}-nb-root-unset", "subnet": "private", "direct_internet": "Disabled",
                       "root_access": None, "groups": [f"{p}-sg-nb"]},
                      {"name": f"{p}-nb-root-off", "subnet": "private", "direct_internet": "Enabled",
                       "root_access": "Disabled", "groups": [f"{p}-sg-wide"]},
                      {"name": f"{p}-nb-no-vpc", "subnet": None, "direct_internet": "Enabled",
                       "root_access": "Enabled", "groups": []},
                      {"name": f"{p}-nb-listed", "subnet": "private", "direct_internet": "Disabled",
                       "root_access": "Disabled", "groups": [f"{p}-sg-listed"]}],
        "jobs": [{"name": f"{p}-job-single", "isolation": True, "vpc": "private", "instance_count": 1,
                  "instance_groups": None, "encryption": False, "groups": [], "stop": False},
                 {"name": f"{p}-job-multi", "isolation": True, "vpc": "private", "instance_count": 2,
                  "instance_groups": None, "encryption": False, "groups": [], "stop": False},
                 {"name": f"{p}-job-groups", "isolation": True, "vpc": "private", "instance_count": None,
                  "instance_groups": [1, 1], "encryption": False, "groups": [], "stop": False},
                 {"name": f"{p}-job-public", "isolation": False, "vpc": "public", "instance_count": 1,
                  "instance_groups": None, "encryption": True, "groups": [], "stop": False},
                 {"name": f"{p}-job-no-vpc", "isolation": False, "vpc": None, "instance_count": 2,
                  "instance_groups": None, "encryption": True, "groups": [], "stop": False}],
        "models": [{"name": f"{p}-model-public", "isolation": True, "vpc": "public", "groups": []},
                   {"name": f"{p}-model-private", "isolation": False, "vpc": "private", "groups": []},
                   {"name": f"{p}-model-no-vpc", "isolation": True, "vpc": None, "groups": []},
                   {"name": f"{p}-model-subnet-gone", "isolation": True, "vpc": "gone", "groups": []}],
        "endpoint_configs": [{"name": f"{p}-epc-serverless", "variants": [{"serverless": True}]},
                             {"name": f"{p}-epc-mixed", "variants": [{"serverless": True},
                                                                     {"serverless": False, "count": 2}]},
                             {"name": f"{p}-epc-one", "variants": [{"serverless": True},
                                                                   {"serverless": False, "count": 1}]},
                             {"name": f"{p}-epc-two", "variants": [{"serverless": False, "count": 2},
                                                                   {"serverless": False, "count": 3}]}],
        "endpoints": [{"service": "sqs", "groups": [f"{p}-sg-vpce"]}],
        "interfaces": [{"groups": [f"{p}-sg-other"]}],
    }


def merge(*worlds: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for world in worlds:
        for key, items in world.items():
            out.setdefault(key, []).extend(items)
    return out


def job_instances(job: Mapping[str, Any]) -> int:
    return sum(job["instance_groups"]) if job["instance_groups"] else job["instance_count"]


def facts_of(world: Mapping[str, list[dict[str, Any]]], group_ids: Mapping[str, str],
             shared_groups: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """What the harness created, per resource, in the terms KINDS speak (not what either tool read).

    A group's `users` are the kinds of resource that name it (notebook, training, model, vpc-endpoint,
    other); its `interfaces` the kinds whose network interfaces carry it (models have none: no endpoint
    is deployed; a stopped job's are gone)."""
    facts: dict[str, dict[str, dict[str, Any]]] = {"notebook": {}, "job": {}, "model": {}, "endpoint_config": {},
                                                   "group": {}}
    users: dict[str, set[str]] = {}
    interfaces: dict[str, set[str]] = {}

    def use(names: list[str], kind: str, interface: bool) -> None:
        for name in names:
            users.setdefault(name, set()).add(kind)
            if interface:
                interfaces.setdefault(name, set()).add(kind)

    for nb in world["notebooks"]:
        facts["notebook"][nb["name"].lower()] = {k: nb[k] for k in ("subnet", "direct_internet", "root_access")}
        use(nb["groups"], "notebook", True)
    for job in world["jobs"]:
        facts["job"][job["name"].lower()] = {
            "isolation": job["isolation"], "vpc": job["vpc"], "instances": job_instances(job),
            "groups": bool(job["instance_groups"]), "encryption": bool(job["encryption"]),
            "running": not job["stop"]}
        if not job["stop"]:
            use(job["groups"], "training", True)
    for model in world["models"]:
        facts["model"][model["name"].lower()] = {"isolation": bool(model["isolation"]), "vpc": model["vpc"]}
        use(model["groups"], "model", False)
    for config in world["endpoint_configs"]:
        variants = config["variants"]
        facts["endpoint_config"][config["name"].lower()] = {
            "serverless": sum(v["serverless"] for v in variants),
            "instance_counts": [v["count"] for v in variants if not v["serverless"]]}
    for endpoint in world["endpoints"]:
        use(endpoint["groups"], "vpc-endpoint", True)
    for eni in world["interfaces"]:
        use(eni["groups"], "other", True)
    for group in world["groups"]:
        gid = group_ids[group["name"]]
        facts["group"][gid] = {"name": group["name"], "ingress": list(group["ingress"]),
                               "open": any(INGRESS[r][0] == "internet" for r in group["ingress"]),
                               "wide": any(INGRESS[r][0] == "wide" for r in group["ingress"]),
                               "prefix_list": any(INGRESS[r][0] == "prefix-list" for r in group["ingress"]),
                               "users": sorted(users.get(group["name"], ())),
                               "interfaces": sorted(interfaces.get(group["name"], ()))}
    for gid, fact in shared_groups.items():
        facts["group"][gid] = fact
    return facts


def build(world: Mapping[str, list[dict[str, Any]]], endpoint: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Create `world` on the server at `endpoint` (over HTTP, as any client); return its facts."""
    import boto3

    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import ROLE, TAGS, build_network, remove_default_vpc

    session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    sm = session.client("sagemaker", endpoint_url=endpoint)
    account = session.client("sts", endpoint_url=endpoint).get_caller_identity()["Account"]
    remove_default_vpc(ec2)
    net = build_network(ec2, account, REGION)
    doomed = ec2.create_subnet(VpcId=net.vpc_id, CidrBlock="10.0.50.0/24",
                               AvailabilityZone=REGION + "a")["Subnet"]["SubnetId"]  # deleted once the models use it
    subnets = {"private": list(net.private_subnets), "public": [net.public_subnet, net.private_subnets[0]],
               "gone": [doomed]}
    # The network's own groups: its endpoints' group (HTTPS from the VPC, on vpc_endpoint interfaces)
    # is reported by both tools; the others no interface uses.
    endpoint_group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]},
                                                           {"Name": "group-name", "Values": ["vpc-endpoints"]}])
    shared = {endpoint_group["SecurityGroups"][0]["GroupId"]: {
        "name": "vpc-endpoints", "ingress": ["https-from-the-vpc"], "open": False, "wide": False,
        "users": ["vpc-endpoint"], "interfaces": ["vpc-endpoint"]}}
    prefix_list = ec2.create_managed_prefix_list(PrefixListName="anywhere", MaxEntries=2, AddressFamily="IPv4",
                                                 Entries=[{"Cidr": "0.0.0.0/0"}])["PrefixList"]["PrefixListId"]
    ids: dict[str, str] = {}
    for group in world["groups"]:
        ids[group["name"]] = ec2.create_security_group(GroupName=group["name"], Description=group["name"],
                                                       VpcId=net.vpc_id)["GroupId"]
    for group in world["groups"]:
        gid = ids[group["name"]]
        if group["ingress"]:
            rules = json.loads(json.dumps([INGRESS[r][1] for r in group["ingress"]])
                               .replace("{prefix_list}", prefix_list).replace("{peer_group}", net.sg_notebook_ok))
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=rules)
        if not group["keep_default_egress"]:
            ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[{"IpProtocol": "-1",
                                                                         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        if group["egress"]:
            ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[EGRESS[r] for r in group["egress"]])

    def group_ids(names: list[str]) -> list[str]:
        return [ids[n] for n in names]

    for nb in world["notebooks"]:
        subnet = subnets[nb["subnet"]][0] if nb["subnet"] else None
        params: dict[str, Any] = {"NotebookInstanceName": nb["name"], "InstanceType": "ml.t3.medium",
                                  "RoleArn": ROLE.format(account=account),
                                  "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]}
        if nb["direct_internet"]:
            params["DirectInternetAccess"] = nb["direct_internet"]
        if nb["root_access"]:
            params["RootAccess"] = nb["root_access"]
        if subnet:
            params.update(SubnetId=subnet, SecurityGroupIds=group_ids(nb["groups"]))
            sm.create_notebook_instance(**params)
            attach_notebook_eni(ec2, subnet, group_ids(nb["groups"]), nb["name"])
        else:
            sm.create_notebook_instance(**params)
    for job in world["jobs"]:
        resources: dict[str, Any] = {"VolumeSizeInGB": 10}
        if job["instance_groups"]:
            resources["InstanceGroups"] = [{"InstanceType": "ml.m5.large", "InstanceCount": n,
                                            "InstanceGroupName": f"g{i}"}
                                           for i, n in enumerate(job["instance_groups"])]
        else:
            resources.update(InstanceType="ml.m5.large", InstanceCount=job["instance_count"])
        params = {"TrainingJobName": job["name"], "RoleArn": f"arn:aws:iam::{account}:role/sagemaker",
                  "AlgorithmSpecification": {"TrainingImage": f"{account}.dkr.ecr.{REGION}.amazonaws.com/x:1",
                                             "TrainingInputMode": "File"},
                  "OutputDataConfig": {"S3OutputPath": "s3://netguard-prowler-diff/out"},
                  "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "ResourceConfig": resources,
                  "EnableNetworkIsolation": job["isolation"], "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]}
        if job["encryption"] is not None:
            params["EnableInterContainerTrafficEncryption"] = job["encryption"]
        if job["vpc"]:
            params["VpcConfig"] = {"Subnets": subnets[job["vpc"]],
                                   "SecurityGroupIds": group_ids(job["groups"]) or [net.sg_notebook_ok]}
        sm.create_training_job(**params)
        if job["stop"]:
            sm.stop_training_job(TrainingJobName=job["name"])  # Stopping: netguard's scan skips it, Prowler does not
        elif job["vpc"] and job["groups"]:
            # the interface SageMaker puts in the job's subnet while it runs (moto creates none)
            ec2.create_network_interface(SubnetId=subnets[job["vpc"]][0], Groups=group_ids(job["groups"]),
                                         Description=f"SageMaker training job {job['name']} "
                                                     "(simulated by prowler_diff)")
    for model in world["models"]:
        params = {"ModelName": model["name"], "ExecutionRoleArn": f"arn:aws:iam::{account}:role/sagemaker",
                  "PrimaryContainer": {"Image": f"{account}.dkr.ecr.{REGION}.amazonaws.com/x:1"}}
        if model["isolation"] is not None:
            params["EnableNetworkIsolation"] = model["isolation"]
        if model["vpc"]:
            params["VpcConfig"] = {"Subnets": subnets[model["vpc"]],
                                   "SecurityGroupIds": group_ids(model["groups"]) or [net.sg_notebook_ok]}
        sm.create_model(**params)
    ec2.delete_subnet(SubnetId=doomed)
    model_name = world["models"][0]["name"] if world["models"] else None
    for config in world["endpoint_configs"]:
        variants = []
        for i, v in enumerate(config["variants"]):
            variant: dict[str, Any] = {"VariantName": f"v{i}"}
            if model_name:
                variant["ModelName"] = model_name
            if v["serverless"]:
                variant["ServerlessConfig"] = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
            else:
                variant.update(InstanceType="ml.m5.large", InitialInstanceCount=v["count"])
            variants.append(variant)
        sm.create_endpoint_config(EndpointConfigName=config["name"], ProductionVariants=variants)
    for vpce in world["endpoints"]:
        ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=net.vpc_id,
                                ServiceName=f"com.amazonaws.{REGION}.{vpce['service']}",
                                SubnetIds=list(net.private_subnets), SecurityGroupIds=group_ids(vpce["groups"]),
                                PrivateDnsEnabled=False)
    for eni in world["interfaces"]:
        ec2.create_network_interface(SubnetId=net.private_subnets[1], Groups=group_ids(eni["groups"]),
                                     Description="an EC2 instance's interface (simulated by prowler_diff)")
    return facts_of(world, ids, shared)


# --- the server ------------------------------------------------------------------------------------

_EC2_XML = '<?xml version="1.0" encoding="UTF-8"?><{op}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' \
           '<requestId>prowler-diff-shim</requestId>{body}</{op}Response>'
# What AWS answers an account that never set these (the operations moto 5.2.5 does not implement).
SHIMMED: dict[str, tuple[str, bytes]] = {
    "ec2:GetSnapshotBlockPublicAccessState": ("text/xml", _EC2_XML.format(
        op="GetSnapshotBlockPublicAccessState", body="<state>unblocked</state>").encode()),
    "ec2:GetImageBlockPublicAccessState": ("text/xml", _EC2_XML.format(
        op="GetImageBlockPublicAccessState", body="<imageBlockPublicAccessState>unblocked</imageBlockPublicAccessState>"
                                                  "<managedBy>account</managedBy>").encode()),
    "ec2:GetInstanceMetadataDefaults": ("text/xml", _EC2_XML.format(
        op="GetInstanceMetadataDefaults", body="<accountLevel></accountLevel>").encode()),
    "ec2:DescribeClientVpnEndpoints": ("text/xml", _EC2_XML.format(
        op="DescribeClientVpnEndpoints", body="<clientVpnEndpoint/>").encode()),
    "sagemaker:ListMonitoringSchedules": ("application/x-amz-json-1.1", b'{"MonitoringScheduleSummaries": []}'),
}


class ProwlerShim:
    """WSGI middleware: answer SHIMMED operations, pass everything else to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answer = SHIMMED.get(operation(environ))
        if answer is None:
            return self.app(environ, start_response)
        content_type, body = answer
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


def serve(port: int) -> None:
    """The server process: benchmarks/motoserver.py's serve(), with ProwlerShim in front of moto."""
    import logging
    from unittest import mock

    from moto.ec2.models.tags import TagBackend
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from netguard_testkit.moto_sagemaker import aws_like_sagemaker

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with aws_like_sagemaker(), mock.patch.object(TagBackend, "describe_tags",
                                                 _tags_of_one_resource(TagBackend.describe_tags)):
        app = Counting(ProwlerShim(DomainDispatcherApplication(create_backend_app)))
        server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
        print("ready", flush=True)
        server.serve_forever()


class ProwlerServer(BenchServer):
    """A BenchServer (same counting, same patches) whose process also runs ProwlerShim and loads no
    default AMIs."""

    @classmethod
    def start(cls, argv: Any = None, env: dict[str, str] | None = None) -> ProwlerServer:
        try:
            server = super().start(lambda port: [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)],
                                   {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"})
        except RuntimeError as exc:
            raise HarnessError(str(exc)) from exc
        return server  # type: ignore[return-value]


# --- the tools -------------------------------------------------------------------------------------

def run_netguard(env: Mapping[str, str]) -> dict[str, Any]:
    done = subprocess.run([str(NETGUARD), "scan", "--region", REGION, "--format", "json"], env=dict(env),
                          capture_output=True, text=True, timeout=600)
    if done.returncode not in (0, 1):
        raise HarnessError(f"netguard scan exited {done.returncode}: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    if report["summary"].get("errors"):
        raise HarnessError(f"netguard could not read everything: {report['summary']['errors']}")
    return report


ERROR_LINE = re.compile(r'"level": "(ERROR|CRITICAL)"')


def run_prowler(env: Mapping[str, str], workdir: Path) -> list[dict[str, Any]]:
    if not PROWLER.exists():
        raise HarnessError(f"{PROWLER} is missing: run `make .venv-prowler`")
    log = workdir / "prowler.log"
    command = [str(PROWLER), "aws", "--region", REGION, "--checks", *CHECKS.values(), "-M", "json-ocsf",
               "-o", str(workdir), "-F", "findings", "--no-banner", "--no-color", "--ignore-exit-code-3",
               "--log-level", "ERROR", "--log-file", str(log)]
    done = subprocess.run(command, env=dict(env), capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise HarnessError(f"prowler exited {done.returncode}: {done.stderr[-2000:] or done.stdout[-2000:]}")
    text = log.read_text() if log.exists() else ""
    errors = ERROR_LINE.findall(text)
    if errors:
        raise HarnessError(f"Prowler logged {len(errors)} error(s) (a read a check depends on may have failed):\n"
                           f"{text[-3000:]}")
    output = workdir / "findings.ocsf.json"
    if not output.exists():
        raise HarnessError(f"Prowler wrote no {output.name}: {done.stdout[-2000:]}")
    return json.loads(output.read_text() or "[]")


@dataclass
class WorldResult:
    index: int
    pairs: list[Pair]
    seconds: dict[str, float] = field(default_factory=dict)


def run_world(index: int, seed: int, with_probes: bool = False, keep: Path | None = None) -> WorldResult:
    rng = random.Random(f"prowler-diff:{seed}:{index}")
    spec = random_world(rng, f"w{index}")
    if with_probes:
        spec = merge(spec, probes(f"w{index}"))
    times: dict[str, float] = {}
    started = time.perf_counter()
    with ProwlerServer.start() as server:
        times["server"] = time.perf_counter() - started
        mark = time.perf_counter()
        facts = build(spec, server.endpoint)
        times["build"] = time.perf_counter() - mark
        env = {**server.env(), "HOME": os.environ.get("HOME", "/tmp")}
        workdir = Path(tempfile.mkdtemp(prefix=f"prowler-diff-w{index}-"))
        try:
            mark = time.perf_counter()
            report = run_netguard(env)
            times["netguard"] = time.perf_counter() - mark
            mark = time.perf_counter()
            findings = run_prowler(env, workdir)
            times["prowler"] = time.perf_counter() - mark
            if keep:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"world-{index}.json").write_text(json.dumps(
                    {"spec": spec, "facts": facts, "netguard": report, "prowler": findings}, indent=1, default=str))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return WorldResult(index, compare(index, netguard_verdicts(report), prowler_verdicts(findings), facts), times)


# --- report ----------------------------------------------------------------------------------------

def _short(value: Any, width: int = 150) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 3] + "..."


def render(results: list[WorldResult], seed: int, prowler_version: str) -> str:
    pairs = [p for r in results for p in r.pairs]
    counts = tally(pairs)
    lines = [f"netguard vs Prowler {prowler_version}: {len(results)} world(s), seed {seed}", ""]
    head = (f"{'control':8} {'Prowler check':70} {'shared':>6} {'agree':>6} {'(n/a~pass)':>10} {'disagree':>8} "
            f"{'explained':>9} {'only ng':>7} {'only pr':>7}")
    lines += [head, "-" * len(head)]
    total = Tally()
    for control, t in counts.items():
        lines.append(f"{control:8} {CHECKS[control]:70} {t.shared:6} {t.agreed:6} {t.na_pass:10} {t.disagreed:8} "
                     f"{t.explained:9} {t.only_netguard:7} {t.only_prowler:7}")
        for name in ("shared", "agreed", "na_pass", "explained", "only_netguard", "only_prowler"):
            setattr(total, name, getattr(total, name) + getattr(t, name))
    lines += ["-" * len(head),
              f"{'total':8} {'':70} {total.shared:6} {total.agreed:6} {total.na_pass:10} {total.disagreed:8} "
              f"{total.explained:9} "
              f"{total.only_netguard:7} {total.only_prowler:7}", ""]
    disagreements = [p for p in pairs if p.shared and not p.agreed]
    lines.append(f"Disagreements ({len(disagreements)}; unexplained {sum(p.kind is None for p in disagreements)}):")
    for p in disagreements:
        lines.append(f"  world {p.world} {p.control} {p.resource}: netguard {p.netguard.status} "  # type: ignore[union-attr]
                     f"{_short(p.netguard.detail)} | Prowler {p.prowler.status} {_short(p.prowler.detail)}")  # type: ignore[union-attr]
        lines.append(f"      -> {p.kind.id} ({p.kind.whose})" if p.kind
                     else f"      -> UNEXPLAINED; facts {_short(p.facts)}")
    seen: dict[str, int] = {}
    for p in disagreements:
        if p.kind:
            seen[p.kind.id] = seen.get(p.kind.id, 0) + 1
    lines += ["", "Kinds:"]
    for kind in KINDS:
        lines.append(f"  {kind.id} x{seen.get(kind.id, 0)} [{kind.whose}]: {kind.reason}. Source: {kind.source}")
    seconds: dict[str, float] = {}
    for r in results:
        for k, v in r.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
    lines += ["", "time (s, all worlds): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())]
    return "\n".join(lines)


def prowler_version() -> str:
    done = subprocess.run([str(PROWLER), "--version"], capture_output=True, text=True, timeout=300)
    return (done.stdout.strip().split() or ["?"])[-1]


def run(worlds: int, seed: int, with_probes: bool = False, keep: Path | None = None,
        progress: Callable[[str], None] | None = None) -> list[WorldResult]:
    results = []
    for index in range(worlds):
        result = run_world(index, seed, with_probes, keep)
        if progress:
            progress(f"world {index}: {sum(p.shared for p in result.pairs)} shared verdicts, "
                     + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items()))
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--probes", action="store_true", help="add PROBES to every world")
    parser.add_argument("--expect-explained", action="store_true",
                        help="exit 1 if a disagreement matches no explained kind")
    parser.add_argument("--keep", type=Path, help="write each world's spec, facts and both reports here")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    started = time.perf_counter()
    try:
        version = prowler_version()
        results = run(args.worlds, args.seed, args.probes, args.keep, lambda m: print(m, file=sys.stderr, flush=True))
    except HarnessError as exc:
        print(f"harness failed: {exc}", file=sys.stderr)
        return 2
    print(render(results, args.seed, version))
    print(f"run time {time.perf_counter() - started:.0f} s")
    unexplained = [p for r in results for p in r.pairs if p.shared and not p.agreed and p.kind is None]
    return 1 if args.expect_explained and unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
