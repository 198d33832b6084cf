"""Every control's example states, and the policy loader failing closed."""
from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.errors import PolicyError
from chalicelib.evaluate import evaluate_state
from chalicelib.model import COMPLIANT, NON_COMPLIANT
from chalicelib.policy import load_policy

POLICY = load_policy()
BASELINE_IDS = {"NB.1", "NB.2", "NB.3", "SG.1", "SG.2"}


@pytest.mark.parametrize("example", POLICY.examples, ids=lambda e: f"{e.control_id}: {e.name}")
def test_every_example_state_evaluates_as_declared(example):
    status, evidence, targets = evaluate_state(POLICY.control(example.control_id), example.state)
    assert status == example.expect, evidence
    if status == NON_COMPLIANT:
        assert evidence, "a violation must say what failed"


def test_each_control_has_a_violating_and_a_compliant_example():
    for control in POLICY.controls:
        kinds = {e.expect for e in POLICY.examples if e.control_id == control.id}
        assert {COMPLIANT, NON_COMPLIANT} <= kinds, control.id


def test_the_controls_of_this_release_are_all_there_with_their_defaults():
    assert {c.id for c in POLICY.controls} >= BASELINE_IDS
    assert all(POLICY.control(i).mode == "enforce" for i in BASELINE_IDS)
    assert POLICY.control("SG.1").severity == "critical"


def test_sg_violation_targets_exactly_the_offending_rules():
    example = next(e for e in POLICY.examples if e.control_id == "SG.1" and e.expect == NON_COMPLIANT)
    _, evidence, targets = evaluate_state(POLICY.control("SG.1"), example.state)
    assert targets == ("sgr-0open22",)
    assert [r["SecurityGroupRuleId"] for r in evidence["OpenIngressRules"]] == ["sgr-0open22"]


GOOD = '''
[[controls]]
id = "X.1"
title = "t"
severity = "high"
resource_type = "AWS::SageMaker::NotebookInstance"
mode = "enforce"
check = "field_equals"
params = { field = "DirectInternetAccess", expected = "Disabled" }
remediation = "quarantine_notebook"
guidance = "g"
'''


@pytest.mark.parametrize("change, message", [
    (("mode = \"enforce\"", "mode = \"sometimes\""), "mode 'sometimes'"),
    (("check = \"field_equals\"", "check = \"no_such_check\""), "unknown check 'no_such_check'"),
    (("expected = \"Disabled\"", "expected = \"Disabled\", colour = 1"), "do not take params: colour"),
    (("remediation = \"quarantine_notebook\"", "remediation = \"revoke_rules\""), "acts on AWS::EC2::SecurityGroup"),
    (("remediation = \"quarantine_notebook\"", "remediation = \"delete_everything\""), "unknown remediation"),
    (("guidance = \"g\"", "guidance = \"g\"\nfavourite = true"), "unknown keys: favourite"),
    (("severity = \"high\"", "severity = \"urgent\""), "severity 'urgent'"),
    (("title = \"t\"\n", ""), "missing keys: title"),
])
def test_invalid_policies_fail_to_load_naming_file_and_control(tmp_path: Path, change, message):
    (tmp_path / "bad.toml").write_text(GOOD.replace(*change))
    with pytest.raises(PolicyError) as err:
        load_policy(str(tmp_path))
    assert "bad.toml: control X.1" in str(err.value) or "bad.toml" in str(err.value)
    assert message in str(err.value)


def test_a_valid_custom_policy_loads(tmp_path: Path):
    (tmp_path / "ok.toml").write_text(GOOD)
    assert [c.id for c in load_policy(str(tmp_path)).controls] == ["X.1"]


def test_duplicate_ids_and_bad_exemptions_are_rejected(tmp_path: Path):
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD)
    with pytest.raises(PolicyError, match="duplicate id"):
        load_policy(str(tmp_path))
    entry = '[[exemptions]]\nresource_id = "sg-1"\naccount = "111122223333"\nreason = "r"\n'
    (tmp_path / "b.toml").write_text(entry + 'controls = ["NOPE.9"]\n')
    with pytest.raises(PolicyError, match="unknown controls: NOPE.9"):
        load_policy(str(tmp_path))
    (tmp_path / "b.toml").write_text(entry + 'controls = ["X.1"]\nuntil = "soon"\n')
    with pytest.raises(PolicyError, match="not a YYYY-MM-DD date"):
        load_policy(str(tmp_path))
    # an exemption by name applies in the accounts it names: a SageMaker name is reused across accounts
    (tmp_path / "b.toml").write_text('[[exemptions]]\nresource_id = "nb"\ncontrols = ["X.1"]\nreason = "r"\n')
    with pytest.raises(PolicyError, match="needs resource_id, account"):
        load_policy(str(tmp_path))
    (tmp_path / "b.toml").write_text(entry.replace('"111122223333"', '"*"') + 'controls = ["X.1"]\n')
    with pytest.raises(PolicyError, match="12-digit account id"):
        load_policy(str(tmp_path))
    (tmp_path / "b.toml").write_text(entry.replace('"r"', '" "') + 'controls = ["X.1"]\n')
    with pytest.raises(PolicyError, match="reason must say why"):
        load_policy(str(tmp_path))
    (tmp_path / "b.toml").write_text(entry.replace('"111122223333"', '["111122223333", "444455556666"]')
                                     + 'controls = ["X.1"]\n')
    assert load_policy(str(tmp_path)).exemptions[0].accounts == ("111122223333", "444455556666")


def test_an_empty_policy_directory_is_an_error(tmp_path: Path):
    with pytest.raises(PolicyError, match="no policy files"):
        load_policy(str(tmp_path))


def test_tag1_covers_every_taggable_type_of_the_registry():
    """TAG.1 names its types in policies/tags.toml, readable and reviewable as the baseline; a resource type
    added to the registry as taggable must be added there too, or this fails (mount targets are not taggable)."""
    from chalicelib.resources import BY_TYPE, EVALUATED

    taggable = {t for t in EVALUATED if BY_TYPE[t].taggable}
    assert set(POLICY.control("TAG.1").resource_types) == taggable
    assert "AWS::EFS::MountTarget" in set(EVALUATED) - taggable
