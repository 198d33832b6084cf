"""`netguard check`: CloudFormation (YAML short forms, intrinsics, conditions, SAM, cdk synth) and Terraform plans
mapped to the engine's states and evaluated by its checks; unknown values are NOT_APPLICABLE with the property
named, never guessed; the reports (table, JSON, SARIF 2.1.0, JUnit XML) and exit codes. No AWS at all.

The fixtures in tests/fixtures/iac/ are the field guide's secure architecture (passes cfn-lint; the parity with a
scan of the deployed equivalent is tests/moto/test_iac_parity.py) and single deviations of it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chalicelib.cli import main
from chalicelib.iac.command import read_file
from chalicelib.iac.model import FileError
from chalicelib.iac.states import evaluate_file, map_resources
from chalicelib.policy import load_policy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "iac"
REGION = "us-east-1"
CONTROLS = list(load_policy().controls)


@pytest.fixture(autouse=True)
def _no_region_from_outside(monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("NETGUARD_CONTROL_MODES", raising=False)
    monkeypatch.delenv("NETGUARD_POLICY_DIR", raising=False)


def verdicts(path: Path | str, parameters: dict[str, str] | None = None, region: str | None = REGION) -> dict:
    parsed = read_file(str(path), parameters or {}, region)
    return {(f.control.id, decl.id): (f.status, dict(f.evidence))
            for f, decl in evaluate_file(parsed, CONTROLS, region=region or "")}


def failing(found: dict) -> set[tuple[str, str]]:
    return {key for key, (status, _) in found.items() if status == "NON_COMPLIANT"}


def write(tmp_path: Path, text: str, name: str = "template.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the fixtures: the secure architecture passes, one deviation fails exactly its control ---------------

@pytest.mark.parametrize("name", ["secure-architecture.yaml", "secure-architecture.tfplan.json"])
def test_the_secure_architecture_has_no_violation_and_every_control_it_covers_is_evaluated(name):
    found = verdicts(FIXTURES / name)
    assert failing(found) == set()
    compliant = {control for (control, _), (status, _) in found.items() if status == "COMPLIANT"}
    assert compliant >= {"NB.1", "NB.2", "NB.3", "NB.4", "MD.1", "MD.2", "EP.1", "EP.2", "EP.3", "DM.1", "DM.2",
                         "VPC.1", "VPC.2", "VPC.3", "VPC.4", "VPC.5", "VPC.6", "VPC.7", "VPC.8", "VPC.9", "VPC.10",
                         "VPC.11", "SG.1", "SG.2", "SG.3", "SG.4", "TAG.1"}


@pytest.mark.parametrize(("name", "expected"), [
    ("deviation-notebook-internet.yaml", {("NB.1", "Notebook")}),
    ("deviation-flow-log-reject-only.yaml", {("VPC.3", "Vpc")}),
    ("deviation-model-no-isolation.tfplan.json", {("MD.1", "aws_sagemaker_model.main")}),
    # cdk synth of ec2.SecurityGroup's default allowAllOutbound: the only thing wrong in that stack
    ("cdk-notebook-stack.template.json", {("SG.3", "NotebookSecurityGroup5C6D7E8F")}),
])
def test_a_single_deviation_fails_exactly_its_control(name, expected):
    assert failing(verdicts(FIXTURES / name)) == expected


def test_the_deviation_fixtures_differ_from_the_secure_one_in_one_line():
    secure = (FIXTURES / "secure-architecture.yaml").read_text().splitlines()
    for name in ("deviation-notebook-internet.yaml", "deviation-flow-log-reject-only.yaml"):
        changed = [(a, b) for a, b in zip(secure, (FIXTURES / name).read_text().splitlines(), strict=True) if a != b]
        assert len(changed) == 1, name


# --- references resolved where the file resolves them -----------------------------------------------------

SECURE = (FIXTURES / "secure-architecture.yaml").read_text()


def test_subnets_are_followed_to_their_route_tables_and_gateways(tmp_path):
    # the notebook's subnet associated with the public route table (0.0.0.0/0 -> the internet gateway)
    text = SECURE.replace("      SubnetId: !Ref PrivateSubnetA\n      RouteTableId: !Ref PrivateRouteTable",
                          "      SubnetId: !Ref PrivateSubnetA\n      RouteTableId: !Ref PublicRouteTable")
    found = verdicts(write(tmp_path, text))
    assert {c for c, _ in failing(found)} == {"NB.3", "MD.2", "DM.2"}
    status, evidence = found[("NB.3", "Notebook")]
    assert evidence["InternetGatewayRoutes"] == [{"Destination": "0.0.0.0/0", "GatewayId": "igw-InternetGateway"}]
    assert evidence["RouteTableId"] == "PublicRouteTable"


def test_a_subnet_without_an_association_uses_the_new_vpcs_main_table_with_the_local_route_only(tmp_path):
    text = SECURE.replace("  PrivateSubnetARouteTable:\n    Type: AWS::EC2::SubnetRouteTableAssociation",
                          "  PrivateSubnetARouteTable:\n    Type: AWS::CloudFormation::WaitConditionHandle\n"
                          "    Metadata:\n      Was: AWS::EC2::SubnetRouteTableAssociation")
    state = next(m.resource.state for m in map_resources(read_file(str(write(tmp_path, text)), {}, REGION))
                 if m.decl.id == "PrivateSubnetA")
    assert state["RouteTable"] == {"RouteTableId": "Vpc main route table", "Routes": [
        {"DestinationCidrBlock": "10.20.0.0/16", "GatewayId": "local", "State": "active"}]}


def test_security_groups_by_reference_scope_sg1_like_a_scan(tmp_path):
    # SSH from the internet on the notebook's group: SG.1 (used by a notebook) and SG.2 fail on it
    text = SECURE.replace(
        "        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: !GetAtt Vpc.CidrBlock, Description: HTTPS "
        "within the VPC }\n      SecurityGroupEgress:\n        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp:"
        " !GetAtt Vpc.CidrBlock, Description: HTTPS within the VPC }\n        - { IpProtocol: tcp, FromPort: 443, "
        "ToPort: 443, DestinationPrefixListId: !Ref S3PrefixListId,\n            Description: S3 through the gateway "
        "endpoint }\n      Tags:\n        - { Key: Environment, Value: !FindInMap [Tags, Values, Environment] }\n"
        "        - { Key: Project, Value: !FindInMap [Tags, Values, Project] }\n        - { Key: Owner, Value: !Ref "
        "Owner }\n        - { Key: CostCenter, Value: !FindInMap [Tags, Values, CostCenter] }\n        - { Key: "
        "Compliance, Value: !FindInMap [Tags, Values, Compliance] }\n\n  EndpointSecurityGroup:",
        "        - { IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0 }\n      SecurityGroupEgress: []\n"
        "\n  EndpointSecurityGroup:", 1)
    assert text != SECURE
    found = verdicts(write(tmp_path, text))
    assert {("SG.1", "NotebookSecurityGroup"), ("SG.2", "NotebookSecurityGroup")} <= failing(found)
    assert found[("SG.1", "NotebookSecurityGroup")][1]["OpenIngressRules"][0]["FromPort"] == 22


def test_a_standalone_ingress_resource_is_a_rule_of_the_group_it_names(tmp_path):
    text = SECURE.replace("Outputs:", "  OpenSsh:\n    Type: AWS::EC2::SecurityGroupIngress\n    Properties:\n"
                                      "      GroupId: !GetAtt VpcEndpointSecurityGroup.GroupId\n      IpProtocol: tcp\n"
                                      "      FromPort: 22\n      ToPort: 22\n      CidrIp: 0.0.0.0/0\n\nOutputs:")
    found = verdicts(write(tmp_path, text))
    assert failing(found) == {("SG.1", "VpcEndpointSecurityGroup")}
    assert found[("SG.1", "VpcEndpointSecurityGroup")][1]["OpenIngressRules"][0]["SecurityGroupRuleId"] == "OpenSsh"


def test_cloudformation_keeps_awss_default_egress_rule_when_the_group_declares_none(tmp_path):
    text = SECURE.replace("      SecurityGroupEgress: []\n", "")
    found = verdicts(write(tmp_path, text))
    assert failing(found) == {("SG.3", "VpcEndpointSecurityGroup")}


# --- unknown values: NOT_APPLICABLE with the property named, never guessed ----------------------------------

def test_a_parameter_without_default_is_unknown_and_named(tmp_path):
    text = SECURE.replace("      DirectInternetAccess: Disabled", "      DirectInternetAccess: !Ref Access").replace(
        "Parameters:\n", "Parameters:\n  Access:\n    Type: String\n    AllowedValues: [Enabled, Disabled]\n", 1)
    status, evidence = verdicts(write(tmp_path, text))[("NB.1", "Notebook")]
    assert status == "NOT_APPLICABLE"
    assert evidence["reason"] == ("unknown before deploy: parameter Access has no default "
                                  "(pass --parameter Access=VALUE)")
    given = verdicts(write(tmp_path, text), {"Access": "Enabled"})
    assert given[("NB.1", "Notebook")][0] == "NON_COMPLIANT"


def test_import_value_ssm_parameters_and_open_conditions_are_unknown(tmp_path):
    text = SECURE.replace("      DirectInternetAccess: Disabled",
                          "      DirectInternetAccess: !ImportValue shared-notebook-access").replace(
        "      RootAccess: Disabled", "      RootAccess: !If [Locked, Disabled, Enabled]").replace(
        "      EnableNetworkIsolation: true", "      EnableNetworkIsolation: !Ref Isolation").replace(
        "Parameters:\n", "Parameters:\n  Isolation:\n    Type: AWS::SSM::Parameter::Value<String>\n"
                         "    Default: /ml/isolation\n  Lock:\n    Type: String\n", 1).replace(
        "Mappings:", "Conditions:\n  Locked: !Equals [!Ref Lock, 'yes']\n\nMappings:")
    found = verdicts(write(tmp_path, text))
    assert failing(found) == set()
    assert found[("NB.1", "Notebook")] == ("NOT_APPLICABLE", {"reason": "unknown before deploy: Notebook.Properties."
                                           "DirectInternetAccess: Fn::ImportValue (another stack's export)"})
    assert "condition Locked" in found[("NB.4", "Notebook")][1]["reason"]
    assert "Lock has no default" in found[("NB.4", "Notebook")][1]["reason"]
    assert "read from SSM Parameter Store" in found[("MD.1", "Model")][1]["reason"]


def test_conditions_the_template_settles_are_evaluated(tmp_path):
    text = SECURE.replace("      DirectInternetAccess: Disabled", "      DirectInternetAccess: !If [Prod, Disabled, "
                                                                   "Enabled]").replace(
        "Mappings:", "Conditions:\n  Prod: !And [!Equals [!Ref Prefix, fraud-ml], !Not [!Equals [!Ref Owner, '']]]"
                     "\n\nMappings:")
    assert verdicts(write(tmp_path, text))[("NB.1", "Notebook")][0] == "COMPLIANT"
    assert verdicts(write(tmp_path, text), {"Prefix": "other"})[("NB.1", "Notebook")][0] == "NON_COMPLIANT"


def test_a_resource_under_an_open_condition_is_not_evaluated_and_one_under_a_false_condition_does_not_exist(tmp_path):
    base = SECURE.replace("  Notebook:\n    Type: AWS::SageMaker::NotebookInstance\n",
                          "  Notebook:\n    Type: AWS::SageMaker::NotebookInstance\n    Condition: WithNotebook\n")
    base = base.replace("      DirectInternetAccess: Disabled", "      DirectInternetAccess: Enabled")
    open_condition = base.replace("Mappings:", "Conditions:\n  WithNotebook: !Equals [!Ref Wanted, 'yes']\n\n"
                                               "Mappings:").replace("Parameters:\n", "Parameters:\n  Wanted:\n"
                                                                                     "    Type: String\n", 1)
    found = verdicts(write(tmp_path, open_condition))
    assert found[("NB.1", "Notebook")][0] == "NOT_APPLICABLE"
    assert "Notebook is created only if condition WithNotebook" in found[("NB.1", "Notebook")][1]["reason"]
    false_condition = base.replace("Mappings:", "Conditions:\n  WithNotebook: !Equals [a, b]\n\nMappings:")
    assert not any(resource == "Notebook" for _, resource in verdicts(write(tmp_path, false_condition)))


def test_without_a_region_what_depends_on_it_is_unknown_and_the_rest_is_evaluated():
    found = verdicts(FIXTURES / "secure-architecture.yaml", region=None)
    assert failing(found) == set()
    assert "AWS::Region" in found[("VPC.4", "Vpc")][1]["reason"]
    assert found[("VPC.5", "StsEndpoint")][0] == "COMPLIANT"  # two distinct zones of Fn::GetAZs, whatever the region


def test_the_sam_template_in_an_existing_vpc_names_what_it_cannot_see():
    found = verdicts(FIXTURES / "sam-inference-proxy.yaml")
    assert failing(found) == set()
    assert found[("NB.1", "Notebook")][0] == "COMPLIANT"
    assert "parameter SubnetIds has no default" in found[("NB.3", "Notebook")][1]["reason"]
    assert "VpcId: parameter VpcId has no default" in found[("SG.2", "NotebookSecurityGroup")][1]["reason"]
    # SAM's Globals put the function in the proxy group: a Lambda function, not SageMaker
    proxy = next(m for m in map_resources(read_file(str(FIXTURES / "sam-inference-proxy.yaml"), {}, REGION))
                 if m.decl.id == "ProxySecurityGroup")
    assert proxy.resource.state["AttachedTo"] == ["other"]


def test_a_rule_from_a_prefix_list_the_file_does_not_declare_leaves_sg1_open(tmp_path):
    text = SECURE.replace("        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: !GetAtt Vpc.CidrBlock, "
                          "Description: HTTPS within the VPC }\n      SecurityGroupEgress: []",
                          "        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, "
                          "SourcePrefixListId: pl-0123456789abcdef0 }\n      SecurityGroupEgress: []")
    status, evidence = verdicts(write(tmp_path, text))[("SG.1", "VpcEndpointSecurityGroup")]
    assert status == "NOT_APPLICABLE" and "prefix list pl-0123456789abcdef0" in evidence["reason"]


def test_terraform_values_known_after_apply_resolve_through_the_configuration_or_stay_unknown(tmp_path):
    plan = json.loads((FIXTURES / "secure-architecture.tfplan.json").read_text())
    change = next(c for c in plan["resource_changes"] if c["address"] == "aws_sagemaker_notebook_instance.main")
    config = next(r for r in plan["configuration"]["root_module"]["resources"]
                  if r["address"] == "aws_sagemaker_notebook_instance.main")
    config["expressions"]["subnet_id"] = {"references": ["var.subnet_id"]}
    change["change"]["after_unknown"]["direct_internet_access"] = True
    del change["change"]["after"]["direct_internet_access"]
    found = verdicts(write(tmp_path, json.dumps(plan), "plan.json"))
    assert found[("NB.3", "aws_sagemaker_notebook_instance.main")] == (
        "NOT_APPLICABLE", {"reason": "unknown before deploy: aws_sagemaker_notebook_instance.main.subnet_id: "
                                     "known after apply"})
    assert found[("NB.1", "aws_sagemaker_notebook_instance.main")][1]["reason"].endswith(
        "direct_internet_access: known after apply")


def test_a_terraform_resource_being_destroyed_is_not_evaluated(tmp_path):
    plan = json.loads((FIXTURES / "deviation-model-no-isolation.tfplan.json").read_text())
    change = next(c for c in plan["resource_changes"] if c["address"] == "aws_sagemaker_model.main")
    change["change"].update(actions=["delete"], before=change["change"]["after"], after=None)
    found = verdicts(write(tmp_path, json.dumps(plan), "plan.json"))
    assert not any(resource == "aws_sagemaker_model.main" for _, resource in found)


# --- bad files: a clear error naming the file and what is wrong ---------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("Resources:\n  A:\n    Type: AWS::EC2::VPC\n  A:\n    Type: AWS::EC2::VPC\n", "duplicate key 'A'"),
    ("Resources: [1, 2\n", "not valid YAML"),
    ('{"Resources": {', "not valid JSON"),
    ("Resources:\n  A:\n    Properties: {}\n", "Resources.A has no Type"),
    ("Resources:\n  A:\n    Type: AWS::EC2::Subnet\n    Properties:\n      VpcId: !Ref Nothing\n",
     "Ref to Nothing, which is neither a parameter nor a resource"),
    ("just: text\n", "neither a CloudFormation template"),
    ("Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      Tags: &a [*a, *a]\n", "nested too deeply"),
    ("[" * 5000 + "]" * 5000, "nest"),  # libyaml: "exceeded maximum nesting depth"
])
def test_a_bad_file_is_a_clear_error(tmp_path, text, message):
    with pytest.raises(FileError) as raised:
        read_file(str(write(tmp_path, text)), {}, REGION)
    assert str(raised.value).startswith(str(tmp_path / "template.yaml") + ":")
    assert message in str(raised.value)


def test_an_alias_bomb_is_refused_not_expanded(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join(lines) + "\nResources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      Tags: *a8\n"
    with pytest.raises(FileError, match="too large to resolve"):
        read_file(str(write(tmp_path, text)), {}, REGION)


# --- the command: formats and exit codes ----------------------------------------------------------------------

def run_check(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_exit_codes_as_scan(capsys, tmp_path):
    assert run_check(capsys, str(FIXTURES / "secure-architecture.yaml"), "--region", REGION)[0] == 0
    code, out, _ = run_check(capsys, str(FIXTURES / "deviation-notebook-internet.yaml"), "--region", REGION)
    assert code == 1
    line = SECURE.splitlines().index("  Notebook:") + 1
    where = f"{FIXTURES / 'deviation-notebook-internet.yaml'}:{line}"
    assert f"NB.1     high      Notebook  NotebookInstance  {where}" in out
    assert run_check(capsys, str(tmp_path / "missing.yaml"))[:1] == (2,)
    code, _, err = run_check(capsys, str(FIXTURES / "secure-architecture.yaml"), "--parameter", "Nope=1")
    assert code == 2 and "does not declare" in err
    assert run_check(capsys, str(FIXTURES / "secure-architecture.yaml"), "--format", "xml")[0] == 2
    bad_policy = tmp_path / "policies"
    bad_policy.mkdir()
    code, _, err = run_check(capsys, str(FIXTURES / "secure-architecture.yaml"), "--policy-dir", str(bad_policy))
    assert code == 3 and "no policy files" in err


def test_json_has_scans_finding_contract_and_where_the_resource_is(capsys):
    code, out, _ = run_check(capsys, str(FIXTURES / "deviation-flow-log-reject-only.yaml"),
                             str(FIXTURES / "deviation-model-no-isolation.tfplan.json"), "--format", "json")
    report = json.loads(out)
    assert code == 1
    row = next(r for r in report["findings"] if r["status"] == "NON_COMPLIANT" and r["control"] == "VPC.3")
    assert set(row) >= {"control", "title", "severity", "resource_type", "resource_id", "arn", "account", "region",
                        "status", "evidence", "decision"}
    assert row["decision"] is None and row["resource_type"] == "AWS::EC2::VPC" and row["resource_id"] == "Vpc"
    assert row["evidence"]["FlowLogs"][0]["TrafficType"] == "REJECT"
    assert row["line"] == SECURE.splitlines().index("  Vpc:") + 1
    tf = next(r for r in report["findings"] if r["status"] == "NON_COMPLIANT" and r["control"] == "MD.1")
    assert tf["resource_id"] == "aws_sagemaker_model.main" and tf["line"] is None
    assert tf["source_type"] == "aws_sagemaker_model"
    assert report["summary"]["non_compliant"] == 2 and report["summary"]["mode"] == "pre-deploy"


def test_sarif_is_sarif_2_1_0_for_code_scanning(capsys, tmp_path):
    out_file = tmp_path / "netguard.sarif"
    code, out, _ = run_check(capsys, str(FIXTURES / "cdk-notebook-stack.template.json"), "--region", REGION,
                             "--format", "sarif", "--output", str(out_file), "--help-uri",
                             "https://example.com/netguard/README.md")
    assert code == 1 and out == ""
    sarif = json.loads(out_file.read_text())
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "netguard"
    assert [r["id"] for r in rules] == [c.id for c in CONTROLS]
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["helpUri"].startswith("https://example.com/netguard/README.md#")
        assert rule["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
    (result,) = run["results"]
    assert result["ruleId"] == "SG.3" and rules[result["ruleIndex"]]["id"] == "SG.3"
    assert result["level"] == "warning" and result["kind"] == "fail" and result["message"]["text"]
    location = result["locations"][0]["physicalLocation"]
    text = (FIXTURES / "cdk-notebook-stack.template.json").read_text().splitlines()
    assert location["artifactLocation"]["uri"] == str(FIXTURES / "cdk-notebook-stack.template.json")
    assert text[location["region"]["startLine"] - 1].strip().startswith('"NotebookSecurityGroup5C6D7E8F":')
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "NotebookSecurityGroup5C6D7E8F"
    assert set(result["partialFingerprints"]) == {"netguard/v1"}


def test_junit_has_a_test_case_per_control_and_resource(capsys):
    code, out, _ = run_check(capsys, str(FIXTURES / "sam-inference-proxy.yaml"),
                             str(FIXTURES / "deviation-notebook-internet.yaml"), "--format", "junit")
    assert code == 1
    root = ET.fromstring(out)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(FIXTURES / "sam-inference-proxy.yaml"),
                                               str(FIXTURES / "deviation-notebook-internet.yaml")]
    cases = [c for s in suites for c in s.findall("testcase")]
    assert int(root.get("tests")) == len(cases) == sum(int(s.get("tests")) for s in suites)
    failures = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["NB.1 Notebook"] and root.get("failures") == "1"
    assert json.loads(failures[0].find("failure").text)["DirectInternetAccess"] == "Enabled"
    skipped = [(c.get("name"), c.find("skipped").get("message")) for c in cases if c.find("skipped") is not None]
    assert any(name == "NB.3 Notebook" and "parameter SubnetIds has no default" in why for name, why in skipped)
    assert int(root.get("skipped")) == len(skipped)


def test_control_characters_in_a_template_cannot_break_the_xml_or_the_terminal(capsys, tmp_path):
    text = SECURE.replace("      DirectInternetAccess: Disabled", '      DirectInternetAccess: "En\\x00abl\\x1b[2Jed"')
    path = write(tmp_path, text)
    code, out, _ = run_check(capsys, str(path), "--format", "junit")
    assert code == 1 and ET.fromstring(out) is not None
    code, out, _ = run_check(capsys, str(path))
    assert "\x1b" not in out and "\x00" not in out


def test_the_fixtures_are_templates_cloudformation_accepts():
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
    if not Path(cfn_lint).exists():
        cfn_lint = shutil.which("cfn-lint") or pytest.fail("cfn-lint is not installed (requirements-dev.txt)")

    templates = [str(FIXTURES / n) for n in ("secure-architecture.yaml", "deviation-notebook-internet.yaml",
                                             "deviation-flow-log-reject-only.yaml", "sam-inference-proxy.yaml",
                                             "cdk-notebook-stack.template.json")]
    result = subprocess.run([cfn_lint, *templates], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_open_condition_whose_branches_agree_is_known(tmp_path):
    text = SECURE.replace("      DirectInternetAccess: Disabled", "      DirectInternetAccess: !If [Big, Disabled, "
                                                                   "Disabled]").replace(
        "Mappings:", "Conditions:\n  Big: !Equals [!Ref Size, large]\n\nMappings:").replace(
        "Parameters:\n", "Parameters:\n  Size:\n    Type: String\n", 1)
    assert verdicts(write(tmp_path, text))[("NB.1", "Notebook")][0] == "COMPLIANT"


def test_fail_on_unknown_makes_what_the_file_leaves_open_fail_ci(capsys):
    sam = str(FIXTURES / "sam-inference-proxy.yaml")
    code, out, _ = run_check(capsys, sam, "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["unknown"] == 3
    assert run_check(capsys, sam, "--fail-on-unknown")[0] == 1
    assert run_check(capsys, str(FIXTURES / "secure-architecture.yaml"), "--region", REGION,
                     "--fail-on-unknown")[0] == 0


def test_a_nested_stack_is_named_not_silently_skipped(capsys, tmp_path):
    text = SECURE.replace("Outputs:", "  Network:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n"
                                      "      TemplateURL: https://example.com/network.yaml\n\nOutputs:")
    code, out, _ = run_check(capsys, str(write(tmp_path, text)), "--region", REGION)
    assert code == 0
    assert f"note: {tmp_path / 'template.yaml'}: Network (AWS::CloudFormation::Stack) is a nested stack: check its " \
           "template too" in out


# --- never guessed: any property left open moves verdicts to NOT_APPLICABLE only, never to another verdict -----

MAPPED_TYPES = ("AWS::SageMaker::", "AWS::EC2::", "AWS::KMS::")


def _statuses(path: Path) -> dict[tuple[str, str], str]:
    return {key: status for key, (status, _) in verdicts(path).items()}


def test_any_property_left_open_only_takes_verdicts_to_not_applicable(tmp_path):
    """Every property of every resource netguard reads, in turn, from a parameter without a default: nothing
    raises, and each verdict stays what it was or becomes NOT_APPLICABLE saying it is unknown (found, among
    others: an endpoint policy or a CIDR tested only with isinstance, which an unknown cannot answer)."""
    from chalicelib.iac.cfn import load_document  # noqa: PLC0415

    data, _ = load_document("secure", SECURE)
    baseline = _statuses(FIXTURES / "secure-architecture.yaml")
    data["Parameters"]["Open"] = {"Type": "String"}
    tried = 0
    for logical_id, resource in data["Resources"].items():
        if not resource["Type"].startswith(MAPPED_TYPES):
            continue
        for prop in list(resource.get("Properties") or {}):
            saved = resource["Properties"][prop]
            resource["Properties"][prop] = {"Ref": "Open"}
            found = verdicts(write(tmp_path, json.dumps(data), "open.json"))
            resource["Properties"][prop] = saved
            tried += 1
            for key, (status, evidence) in found.items():
                assert status == baseline[key] or (
                    status == "NOT_APPLICABLE" and evidence["reason"].startswith("unknown before deploy")), \
                    (f"{logical_id}.{prop} open", key, status, evidence, baseline[key])
    assert tried > 150


def test_any_terraform_attribute_known_only_after_apply_only_takes_verdicts_to_not_applicable(tmp_path):
    plan = json.loads((FIXTURES / "secure-architecture.tfplan.json").read_text())
    baseline = _statuses(FIXTURES / "secure-architecture.tfplan.json")
    tried = 0
    for change in plan["resource_changes"]:
        body = change["change"]
        for attribute in [a for a in body["after"] if a not in ("tags", "tags_all")] + ["tags_all"]:
            saved = (body["after"].get(attribute), body["after_unknown"].get(attribute))
            body["after"].pop(attribute, None)
            body["after_unknown"][attribute] = True
            config = next(r for r in plan["configuration"]["root_module"]["resources"]
                          if change["address"].startswith(r["address"]))
            expression = config["expressions"].pop(attribute, None)
            config["expressions"][attribute] = {"references": ["var.open"]}
            found = verdicts(write(tmp_path, json.dumps(plan), "plan.json"))
            body["after"][attribute], body["after_unknown"][attribute] = saved
            if expression is None:
                config["expressions"].pop(attribute)
            else:
                config["expressions"][attribute] = expression
            tried += 1
            for key, (status, evidence) in found.items():
                assert status == baseline[key] or (
                    status == "NOT_APPLICABLE" and evidence["reason"].startswith("unknown before deploy")), \
                    (f"{change['address']}.{attribute} open", key, status, evidence, baseline[key])
    assert tried > 100


def test_a_cidr_the_template_leaves_open_is_not_taken_for_private(tmp_path):
    """SG.1 tests a CIDR with isinstance(cidr, str) first: an unknown one must not pass as 'not the internet'."""
    text = SECURE.replace("Parameters:\n", "Parameters:\n  AdminCidr:\n    Type: String\n", 1).replace(
        "        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: !GetAtt Vpc.CidrBlock, Description: HTTPS "
        "within the VPC }\n      SecurityGroupEgress: []",
        "        - { IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: !Ref AdminCidr }\n"
        "      SecurityGroupEgress: []")
    found = verdicts(write(tmp_path, text))
    assert found[("SG.1", "VpcEndpointSecurityGroup")] == ("NOT_APPLICABLE", {
        "reason": "unknown before deploy: parameter AdminCidr has no default (pass --parameter AdminCidr=VALUE)"})
    opened = verdicts(write(tmp_path, text), {"AdminCidr": "0.0.0.0/1"})
    assert opened[("SG.1", "VpcEndpointSecurityGroup")][0] == "NON_COMPLIANT"
