"""The resource registry (chalicelib/resources): what each type declares holds against what netguard does.

* the policy loader rejects a control naming a field its types' collectors never emit;
* every collector emits exactly its type's declared state fields (in the secure world, where every type
  exists), so that the declaration the loader trusts is the collector's;
* triggers, scan lists and the Config rule are derived from the registry, not kept beside it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib import resources
from chalicelib.aws import Clients
from chalicelib.configrule import CONFIG_TYPES
from chalicelib.errors import PolicyError
from chalicelib.graph import Collector
from chalicelib.policy import load_policy
from chalicelib.scan import LISTS, list_refs
from chalicelib.triggers import API_CALLS, STATE_CHANGES, api_call_pattern
from netguard_testkit.moto_fidelity import aws_like_notebooks
from netguard_testkit.moto_sagemaker import aws_like_sagemaker
from netguard_testkit.secure_world import build_secure_world
from netguard_testkit.world import remove_default_vpc

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def _policy_with(tmp_path: Path, file: str, old: str, new: str) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target)
    text = (target / file).read_text(encoding="utf-8")
    assert old in text
    (target / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def test_a_control_on_a_field_no_collector_emits_is_rejected(tmp_path):
    misspelt = _policy_with(tmp_path, "notebooks.toml", 'field = "DirectInternetAccess"',
                            'field = "DirectInternetAcces"')
    with pytest.raises(PolicyError) as err:
        load_policy(str(misspelt))
    message = str(err.value)
    assert "NB.1" in message and "'DirectInternetAcces'" in message and "AWS::SageMaker::NotebookInstance" in message


def test_an_applies_when_on_an_unknown_field_is_rejected(tmp_path):
    misspelt = _policy_with(tmp_path, "security-groups.toml", 'field = "AttachedTo"', 'field = "AttachedToo"')
    with pytest.raises(PolicyError, match="applies_when.field 'AttachedToo' is not a state field"):
        load_policy(str(misspelt))


def test_the_shipped_baseline_names_only_emitted_fields():
    policy = load_policy(str(ROOT / "policies"))
    named = [(c.id, t, f) for c in policy.controls for t in c.resource_types
             for f in (c.params.get("field"), (c.applies_when or {}).get("field")) if f]
    assert named, "the baseline names fields: the check above is not vacuous"
    assert all(f in resources.BY_TYPE[t].state_fields for _, t, f in named)


@pytest.fixture(scope="module")
def collected():
    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        session = boto3.session.Session(region_name=REGION)
        remove_default_vpc(session.client("ec2"))
        account = session.client("sts").get_caller_identity()["Account"]
        build_secure_world(session, account, REGION, with_public_subnet=True)
        collector = Collector(Clients(session), workers=2)
        out = collector.collect(list_refs(collector, account, REGION))
        assert not out.errors, out.errors
        yield out.resources


@pytest.mark.parametrize("rtype", resources.EVALUATED)
def test_each_collector_emits_exactly_its_declared_fields(collected, rtype):
    spec = resources.BY_TYPE[rtype]
    found = [r for r in collected if r.ref.resource_type == rtype]
    assert found, f"the secure world has no {rtype}: the comparison below would be vacuous"
    emitted = {k for r in found for k in r.state} | {"Tags"}  # checks read tags as the Tags field
    assert emitted - spec.state_fields == set(), f"{rtype} emits undeclared fields"
    assert spec.state_fields - emitted == set(), f"{rtype} declares fields its collector never emits"


def test_events_lists_and_config_come_from_the_registry():
    for spec in resources.REGISTRY:
        assert API_CALLS.get(spec.type, {}).get(spec.event_source, ()) == spec.api_calls
        if spec.state_change is not None:
            assert STATE_CHANGES[spec.state_change.detail_type][0] == spec.type
        assert (spec.type in LISTS) == (spec.listing is not None)
        assert (spec.type in CONFIG_TYPES) == spec.config_recorded
    pattern = api_call_pattern(resources.EVALUATED)
    assert set(pattern["detail"]["eventName"]) >= {c for s in resources.REGISTRY if s.evaluated for c in s.api_calls}
    # every evaluated type is listed by a scan: a SageMaker listing, or the network's prime
    assert {s.type for s in resources.REGISTRY if s.evaluated and s.listing is None} == set(resources.NETWORK)

