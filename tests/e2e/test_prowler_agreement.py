"""Agreement with Prowler (reliability/prowler_diff.py): the mapping and comparison on plain data, and
one random world (with the probes, one resource per known kind of disagreement) read by both tools.

The world test needs Prowler in .venv-prowler (`make .venv-prowler`, about 1.5 min and 364 MB from an
empty pip cache); without it the test fails, it is not skipped.
"""
from __future__ import annotations

import io
import random
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "reliability"))

import prowler_diff as pd  # noqa: E402

SEED = 11


# --- mapping and comparison, plain data --------------------------------------------------------------

def ocsf(check: str, arn: str, status: str, message: str = "m") -> dict[str, Any]:
    return {"metadata": {"event_code": check}, "resources": [{"uid": arn}], "status_code": status,
            "status_detail": message}


def row(control: str, rid: str, status: str, evidence: Any = None) -> dict[str, Any]:
    return {"control": control, "resource_id": rid, "status": status, "evidence": evidence or {}}


def test_every_shared_control_maps_to_one_prowler_check_and_back() -> None:
    assert set(pd.CHECKS) == {"NB.1", "NB.2", "NB.4", "JOB.1", "JOB.2", "JOB.3", "MD.1", "MD.2", "EP.1", "SG.1"}
    assert len(set(pd.CHECKS.values())) == len(pd.CHECKS)
    assert set(pd.RESOURCE_KIND) == set(pd.CHECKS)


def test_prowler_findings_are_keyed_by_control_and_the_last_part_of_the_arn() -> None:
    findings = [
        ocsf("sagemaker_notebook_instance_root_access_disabled",
             "arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/My-Notebook", "FAIL", "root on"),
        ocsf("ec2_securitygroup_allow_ingress_from_internet_to_any_port",
             "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0abc", "PASS"),
        ocsf("sagemaker_endpoint_config_prod_variant_instances",
             "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/cfg-1", "MANUAL"),
    ]
    verdicts = pd.prowler_verdicts(findings)
    assert verdicts == {("NB.4", "my-notebook"): pd.Verdict("FAIL", "root on"),
                        ("SG.1", "sg-0abc"): pd.Verdict("PASS", "m"),
                        ("EP.1", "cfg-1"): pd.Verdict("MANUAL", "m")}


def test_prowler_findings_of_a_check_not_asked_for_or_twice_the_same_are_harness_errors() -> None:
    with pytest.raises(pd.HarnessError, match="not asked for"):
        pd.prowler_verdicts([ocsf("ec2_securitygroup_allow_ingress_from_internet_to_all_ports", "arn:x/sg-1", "FAIL")])
    twice = ocsf("sagemaker_models_vpc_settings_configured", "arn:aws:sagemaker:::model/m", "FAIL")
    with pytest.raises(pd.HarnessError, match="twice"):
        pd.prowler_verdicts([twice, twice])


def test_netguard_rows_of_other_controls_are_left_out() -> None:
    report = {"findings": [row("NB.1", "Nb-1", "NON_COMPLIANT", {"DirectInternetAccess": "Enabled"}),
                           row("NB.3", "nb-1", "NOT_APPLICABLE"), row("TAG.1", "nb-1", "NON_COMPLIANT"),
                           row("SG.1", "sg-0abc", "COMPLIANT")]}
    assert pd.netguard_verdicts(report) == {
        ("NB.1", "nb-1"): pd.Verdict("NON_COMPLIANT", {"DirectInternetAccess": "Enabled"}),
        ("SG.1", "sg-0abc"): pd.Verdict("COMPLIANT", {})}
    with pytest.raises(pd.HarnessError, match="twice"):
        pd.netguard_verdicts({"findings": [row("NB.1", "a", "COMPLIANT"), row("NB.1", "A", "COMPLIANT")]})


@pytest.mark.parametrize("netguard,prowler,agree", [
    ("NON_COMPLIANT", "FAIL", True), ("COMPLIANT", "PASS", True), ("NOT_APPLICABLE", "PASS", True),
    ("NON_COMPLIANT", "PASS", False), ("COMPLIANT", "FAIL", False), ("NOT_APPLICABLE", "FAIL", False),
    ("COMPLIANT", "MANUAL", False), ("NON_COMPLIANT", "MANUAL", False), ("NOT_APPLICABLE", "MANUAL", False),
])
def test_agreement_is_same_violation_answer(netguard: str, prowler: str, agree: bool) -> None:
    assert pd.agrees(netguard, prowler) is agree


def test_compare_counts_shared_verdicts_and_keeps_one_sided_ones_apart() -> None:
    netguard = {("JOB.3", "single"): pd.Verdict("NOT_APPLICABLE", {"reason": "1 instance"}),
                ("JOB.3", "two"): pd.Verdict("NOT_APPLICABLE", {"reason": "1 instance"}),
                ("JOB.1", "single"): pd.Verdict("NON_COMPLIANT", {}),
                ("SG.1", "sg-unused"): pd.Verdict("NOT_APPLICABLE", {})}
    prowler = {("JOB.3", "single"): pd.Verdict("FAIL", "off"), ("JOB.3", "two"): pd.Verdict("FAIL", "off"),
               ("JOB.1", "single"): pd.Verdict("FAIL", "off"), ("JOB.1", "stopped"): pd.Verdict("PASS", "on")}
    job = {"isolation": False, "vpc": None, "groups": False, "encryption": False, "running": True}
    facts = {"job": {"single": {**job, "instances": 1}, "two": {**job, "instances": 2},
                     "stopped": {**job, "instances": 1, "running": False}}}
    pairs = {(p.control, p.resource): p for p in pd.compare(0, netguard, prowler, facts)}
    assert pairs["JOB.3", "single"].kind is not None and pairs["JOB.3", "single"].kind.id == "JOB.3-single-instance"
    # netguard saying one instance for a job that has two is not the single-instance kind: unexplained
    assert not pairs["JOB.3", "two"].agreed and pairs["JOB.3", "two"].kind is None
    assert pairs["JOB.1", "single"].agreed and pairs["JOB.1", "single"].kind is None
    counts = pd.tally(pairs.values())
    assert (counts["JOB.3"].shared, counts["JOB.3"].agreed, counts["JOB.3"].explained) == (2, 0, 1)
    assert (counts["JOB.1"].shared, counts["JOB.1"].agreed, counts["JOB.1"].only_prowler) == (1, 1, 1)
    assert (counts["SG.1"].shared, counts["SG.1"].only_netguard) == (0, 1)


GROUP = {"open": True, "wide": False, "prefix_list": False, "users": ["notebook"], "interfaces": ["notebook"]}
# For each kind: facts it explains, and a neighbour it must not (the same statuses, one fact changed).
KIND_CASES = {
    "JOB.3-single-instance": ({"instances": 1, "encryption": False}, {"instances": 3, "encryption": False}),
    "JOB.2-public-subnet": ({"vpc": "public"}, {"vpc": "private"}),
    "MD.2-public-subnet": ({"vpc": "public"}, {"vpc": None}),
    "MD.2-subnet-gone": ({"vpc": "gone"}, {"vpc": "private"}),
    "EP.1-serverless-variant": ({"serverless": 1, "instance_counts": [2]},
                                {"serverless": 1, "instance_counts": [1, 2]}),
    "NB.4-root-access-not-returned": ({"root_access": None}, {"root_access": "Enabled"}),
    "SG.1-not-sagemaker": ({**GROUP, "users": ["other"], "interfaces": ["other"]},
                           {**GROUP, "users": ["model", "other"], "interfaces": ["other"]}),
    "SG.1-vpc-endpoint-interfaces": ({**GROUP, "users": ["vpc-endpoint"], "interfaces": ["vpc-endpoint"]},
                                     {**GROUP, "users": ["notebook", "vpc-endpoint"],
                                      "interfaces": ["notebook", "vpc-endpoint"]}),
    "SG.1-wide-public-range": ({**GROUP, "open": False, "wide": True}, {**GROUP, "open": False, "wide": False}),
    "SG.1-prefix-list-of-the-internet": ({**GROUP, "open": False, "prefix_list": True}, {**GROUP, "open": False}),
}


@pytest.mark.parametrize("kind", pd.KINDS, ids=lambda k: k.id)
def test_each_kind_explains_its_case_and_not_its_neighbour(kind: pd.Kind) -> None:
    assert kind.id in KIND_CASES, "a new kind needs its cases here"
    explained, neighbour = KIND_CASES[kind.id]
    for netguard in kind.netguard:
        for prowler in kind.prowler:
            assert not pd.agrees(netguard, prowler)
            assert pd.explain(kind.control, netguard, prowler, explained) is kind
            assert pd.explain(kind.control, netguard, prowler, neighbour) is None
            assert pd.explain(kind.control, netguard, prowler, None) is None
    assert kind.whose in ("netguard", "definition", "moto") and kind.reason and kind.source


def test_kinds_do_not_cover_the_controls_where_the_tools_ask_the_same_question() -> None:
    assert not {k.control for k in pd.KINDS} & {"NB.1", "NB.2", "JOB.1", "MD.1"}


def test_random_worlds_are_seeded_and_valid_for_aws() -> None:
    one = pd.random_world(random.Random("s:1"), "w0")
    assert one == pd.random_world(random.Random("s:1"), "w0")
    assert one != pd.random_world(random.Random("s:2"), "w0")
    worlds = [pd.merge(pd.random_world(random.Random(f"s:{i}"), f"w{i}"), pd.probes(f"w{i}")) for i in range(30)]
    for world in worlds:
        groups = {g["name"] for g in world["groups"]}
        users = [n for key in ("notebooks", "jobs", "models", "endpoints", "interfaces") for r in world[key]
                 for n in r["groups"]]
        assert set(users) <= groups
        for nb in world["notebooks"]:
            # CreateNotebookInstance: DirectInternetAccess Disabled and security groups need a SubnetId
            assert nb["subnet"] or (nb["direct_internet"] != "Disabled" and not nb["groups"])
        for config in world["endpoint_configs"]:
            assert sum(v["serverless"] for v in config["variants"]) <= 1
        for job in world["jobs"]:
            assert (job["instance_count"] is None) != (job["instance_groups"] is None)
    # the draws vary each field on its own: every value of each appears across the worlds
    notebooks = [nb for w in worlds for nb in w["notebooks"]]
    assert {(nb["direct_internet"], nb["root_access"]) for nb in notebooks if nb["subnet"]} == {
        (d, r) for d in ("Enabled", "Disabled", None) for r in ("Enabled", "Disabled", None)}
    jobs = [j for w in worlds for j in w["jobs"]]
    assert {(j["isolation"], j["vpc"], j["instance_groups"] is not None) for j in jobs} == {
        (i, v, g) for i in (True, False) for v in (None, "private", "public") for g in (True, False)}
    assert {r for w in worlds for g in w["groups"] for r in g["ingress"]} == set(pd.INGRESS)


def test_facts_say_who_uses_a_group_and_whose_interfaces_carry_it() -> None:
    world = {"groups": [{"name": n, "ingress": i, "egress": [], "keep_default_egress": True}
                        for n, i in (("a", ["ssh-from-0.0.0.0/0"]), ("b", ["https-from-0.0.0.0/1"]), ("c", []))],
             "notebooks": [{"name": "NB", "subnet": "private", "direct_internet": None, "root_access": None,
                            "groups": ["a"]}],
             "jobs": [{"name": "j", "isolation": True, "vpc": "private", "instance_count": None,
                       "instance_groups": [1, 2], "encryption": None, "groups": ["b"], "stop": True}],
             "models": [{"name": "m", "isolation": None, "vpc": "private", "groups": ["b"]}],
             "endpoint_configs": [{"name": "e", "variants": [{"serverless": True}, {"serverless": False, "count": 2}]}],
             "endpoints": [{"service": "kms", "groups": ["c"]}], "interfaces": [{"groups": ["a"]}]}
    facts = pd.facts_of(world, {"a": "sg-a", "b": "sg-b", "c": "sg-c"}, {})
    assert facts["group"]["sg-a"] == {"name": "a", "ingress": ["ssh-from-0.0.0.0/0"], "open": True, "wide": False,
                                      "prefix_list": False, "users": ["notebook", "other"],
                                      "interfaces": ["notebook", "other"]}
    # a stopped job's interfaces are gone and a model without an endpoint has none
    assert facts["group"]["sg-b"]["users"] == ["model"] and facts["group"]["sg-b"]["interfaces"] == []
    assert facts["group"]["sg-b"]["wide"] and not facts["group"]["sg-b"]["open"]
    assert facts["group"]["sg-c"]["interfaces"] == ["vpc-endpoint"]
    assert facts["notebook"]["nb"] == {"subnet": "private", "direct_internet": None, "root_access": None}
    assert facts["job"]["j"] == {"isolation": True, "vpc": "private", "instances": 3, "groups": True,
                                 "encryption": False, "running": False}
    assert facts["endpoint_config"]["e"] == {"serverless": 1, "instance_counts": [2]}


@pytest.mark.parametrize("op", sorted(pd.SHIMMED))
def test_the_shim_answers_what_botocore_can_parse_and_passes_the_rest_to_moto(op: str) -> None:
    import botocore.session
    from botocore.parsers import create_parser

    service, name = op.split(":")
    model = botocore.session.get_session().get_service_model(service).operation_model(name)
    seen: list[str] = []
    shim = pd.ProwlerShim(lambda environ, start: seen.append("moto") or [b""])
    status: list[str] = []
    target = ({"HTTP_X_AMZ_TARGET": f"SageMaker.{name}"} if service == "sagemaker"
              else {"QUERY_STRING": f"Action={name}"})
    environ = {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/{service}/aws4_request",
               "wsgi.input": io.BytesIO(b""), **target}
    body = b"".join(shim(environ, lambda s, headers: status.append(s)))
    assert status == ["200 OK"] and not seen
    parsed = create_parser(model.metadata["protocol"]).parse(
        {"body": body, "headers": {}, "status_code": 200}, model.output_shape)
    assert "Error" not in parsed
    other = {**environ, "QUERY_STRING": "Action=DescribeSecurityGroups", "HTTP_X_AMZ_TARGET": "SageMaker.ListModels"}
    shim(other, lambda s, headers: None)
    assert seen == ["moto"]


# --- one world, both tools ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world() -> list[pd.Pair]:
    if not pd.PROWLER.exists():
        pytest.fail(f"{pd.PROWLER} is missing: `make .venv-prowler` installs it (the `test` target should)")
    results = pd.run(worlds=1, seed=SEED, with_probes=True)
    return results[0].pairs


def test_every_disagreement_is_an_explained_kind(world: list[pd.Pair]) -> None:
    unexplained = [f"{p.control} {p.resource}: netguard {p.netguard.status} {p.netguard.detail} / Prowler "  # type: ignore[union-attr]
                   f"{p.prowler.status} {p.prowler.detail}; facts {p.facts}"  # type: ignore[union-attr]
                   for p in world if p.shared and not p.agreed and p.kind is None]
    assert not unexplained, "\n".join(unexplained)


def test_every_kind_is_still_seen(world: list[pd.Pair]) -> None:
    """A kind no longer seen on its probe is stale (one of the tools changed): drop or fix it."""
    seen = {p.kind.id for p in world if p.kind}
    assert seen == {k.id for k in pd.KINDS}


def test_every_control_is_compared_and_agrees_somewhere(world: list[pd.Pair]) -> None:
    counts = pd.tally(world)
    for control, t in counts.items():
        assert t.shared >= 3, control
        assert t.agreed >= 1, control
    # both verdicts, violation and none, agreed on for each control in this world
    for control in pd.CHECKS:
        statuses = {p.prowler.status for p in world if p.control == control and p.agreed}  # type: ignore[union-attr]
        assert statuses == {"PASS", "FAIL"}, (control, statuses)


@pytest.mark.parametrize("control,resource,netguard,prowler", [
    ("JOB.3", "w0-probe-job-groups", "NON_COMPLIANT", "FAIL"),   # heterogeneous cluster of two instances
    ("JOB.3", "w0-probe-job-multi", "NON_COMPLIANT", "FAIL"),
    ("JOB.2", "w0-probe-job-single", "COMPLIANT", "PASS"),
    ("MD.2", "w0-probe-model-private", "COMPLIANT", "PASS"),
    ("MD.1", "w0-probe-model-private", "NON_COMPLIANT", "FAIL"),
    ("EP.1", "w0-probe-epc-one", "NON_COMPLIANT", "FAIL"),        # a serverless variant beside one instance
    ("NB.4", "w0-probe-nb-root-off", "COMPLIANT", "PASS"),        # root off, direct internet on
    ("NB.1", "w0-probe-nb-root-off", "NON_COMPLIANT", "FAIL"),
    ("NB.1", "w0-probe-nb-root-unset", "COMPLIANT", "PASS"),
])
def test_the_probes_neighbours_agree(world: list[pd.Pair], control: str, resource: str, netguard: str,
                                     prowler: str) -> None:
    pair = next(p for p in world if (p.control, p.resource) == (control, resource))
    assert (pair.netguard.status, pair.prowler.status) == (netguard, prowler)  # type: ignore[union-attr]


def test_open_groups_on_sagemaker_interfaces_fail_in_both(world: list[pd.Pair]) -> None:
    open_on_sagemaker = [p for p in world if p.control == "SG.1" and p.shared and p.facts and p.facts["open"]
                         and {"notebook", "training"} & set(p.facts["interfaces"])]
    assert open_on_sagemaker
    assert {(p.netguard.status, p.prowler.status) for p in open_on_sagemaker} == {("NON_COMPLIANT", "FAIL")}  # type: ignore[union-attr]
