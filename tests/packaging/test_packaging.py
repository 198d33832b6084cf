"""What `chalice package` builds: the deployment zip and the SAM template, for every stage.

These tests run the real `chalice package` (as `make package` does) on a copy of the project, so
they need what it needs: the dev install and access to PyPI (Chalice downloads Lambda-compatible
wheels of requirements.txt; pip's cache makes reruns quick). They run in `make test` and CI; select
them alone with `pytest tests/packaging/test_packaging.py` (or `-k packaging`).

The copy leaves out what `make package` never sees: .git, .venv, build/, Chalice's deployment cache
and every __pycache__ (Chalice zips chalicelib/ whole, bytecode included, which is why
`make package` deletes them first). A fake .venv is put in the copy to show Chalice ignores it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGION = "us-east-1"
POLICY_FILES = ("notebooks.toml", "security-groups.toml")
CONTROL_IDS = {"NB.1", "NB.2", "NB.3", "SG.1", "SG.2"}
REQUIRED_ENV = ("NETGUARD_MODE", "NETGUARD_LEDGER_TABLE", "NETGUARD_ALERT_TOPIC_ARN", "NETGUARD_SLACK_WEBHOOK_PARAM",
                "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL")
EXPECTED_MODE = {"dev": "alert", "prod": "enforce"}
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "build", "deployments", "deployed",
                                     ".pytest_cache", "*.egg-info", "netguard-ledger.jsonl")


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.fail(f"{name} is not installed (make .venv installs it from requirements-dev.txt)")
    return which


def _config() -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))


STAGES = sorted(_config()["stages"])


def _stage_env(stage: str) -> dict[str, str]:
    config = _config()
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def _chalice_package(project: Path, stage: str, out: Path) -> subprocess.CompletedProcess[str]:
    # NETGUARD_STAGE names the stage's queues in app.py, as `make package` sets it.
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "PYTHONDONTWRITEBYTECODE": "1", "NETGUARD_STAGE": stage}
    return subprocess.run([_tool("chalice"), "--project-dir", str(project), "package", "--stage", stage, str(out)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """stage -> directory holding that stage's deployment.zip and sam.json."""
    base = tmp_path_factory.mktemp("package")
    project = base / "project"
    shutil.copytree(ROOT, project, symlinks=True, ignore=COPY_IGNORE)
    assert (project / "vendor" / "policies").is_symlink(), "vendor/policies should be a symlink to ../policies"
    fake_venv = project / ".venv" / "lib" / "python3.11" / "site-packages"
    fake_venv.mkdir(parents=True)
    (fake_venv / "must_not_be_packaged.py").write_text("raise SystemExit('packaged from .venv')\n")
    outs = {stage: base / f"out-{stage}" for stage in STAGES}
    # One stage at a time would double the wait; Chalice's per-project cache makes parallel runs
    # race on the same cache file, so each stage gets its own copy of the (small) project.
    projects = {STAGES[0]: project}
    for stage in STAGES[1:]:
        projects[stage] = base / f"project-{stage}"
        shutil.copytree(project, projects[stage], symlinks=True)
    with ThreadPoolExecutor(max_workers=len(STAGES)) as pool:
        results = dict(zip(STAGES, pool.map(lambda s: _chalice_package(projects[s], s, outs[s]), STAGES), strict=True))
    for stage, result in results.items():
        assert result.returncode == 0, f"chalice package --stage {stage} failed:\n{result.stdout}\n{result.stderr}"
        assert (outs[stage] / "deployment.zip").is_file() and (outs[stage] / "sam.json").is_file()
    return outs


def _names(stage_dir: Path) -> list[str]:
    with zipfile.ZipFile(stage_dir / "deployment.zip") as zf:
        return zf.namelist()


def _template(stage_dir: Path) -> dict[str, Any]:
    return json.loads((stage_dir / "sam.json").read_text(encoding="utf-8"))


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """handler name (app.<name>) -> the function's Properties."""
    out = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            handler = resource["Properties"]["Handler"]
            assert handler.startswith("app."), handler
            out[handler.removeprefix("app.")] = resource["Properties"]
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_policies_are_at_the_zip_root(packaged: dict[str, Path], stage: str) -> None:
    names = set(_names(packaged[stage]))
    for name in POLICY_FILES:
        assert f"policies/{name}" in names, f"policies/{name} missing from the {stage} zip"
    assert not any(n.startswith("vendor/") for n in names), "vendor/ contents go to the zip root, not under vendor/"


@pytest.mark.parametrize("stage", STAGES)
def test_zip_holds_the_app_and_nothing_of_the_workspace(packaged: dict[str, Path], stage: str) -> None:
    names = _names(packaged[stage])
    assert "app.py" in names
    assert "chalicelib/__init__.py" in names and "chalicelib/handlers.py" in names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "chalicelib").glob("*.py")}
    assert sources <= set(names), f"chalicelib modules missing from the zip: {sorted(sources - set(names))}"
    bad = [n for n in names if n.startswith(("tests/", ".venv/", "netguard_demo/", "netguard_testkit/", "benchmarks/",
                                              "build/", ".chalice/", ".git/", "must_not_be_packaged"))
           or "__pycache__/" in n or n.endswith(".pyc")]
    assert not bad, f"workspace files in the deployment zip: {bad[:20]}"


@pytest.mark.parametrize("stage", STAGES)
def test_zip_loads_the_policy_from_its_own_copy(packaged: dict[str, Path], stage: str, tmp_path: Path) -> None:
    """Unzip and import the deployed code the way Lambda does (task root first on sys.path): the
    policy loader must find policies/ next to chalicelib/ in the zip, not the repository's."""
    root = tmp_path / "task"
    with zipfile.ZipFile(packaged[stage] / "deployment.zip") as zf:
        zf.extractall(root)
    probe = (
        "import json, app, chalicelib, aws_lambda_powertools\n"
        "from chalicelib.policy import DEFAULT_POLICY_DIR, load_policy\n"
        "policy = load_policy()\n"
        "print(json.dumps({'policy_dir': str(DEFAULT_POLICY_DIR), 'chalicelib': chalicelib.__file__,\n"
        "  'app': app.__file__, 'powertools': aws_lambda_powertools.__file__,\n"
        "  'controls': sorted(c.id for c in policy.controls),\n"
        "  'handlers': {n: callable(getattr(app, n, None)) for n in ('on_api_call', 'on_state_change')}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(_stage_env(stage), AWS_DEFAULT_REGION=REGION, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-s", "-c", probe], cwd=root, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"[{stage}] policy loaded from {loaded['policy_dir']}: {loaded['controls']}")
    task = root.resolve()
    for key in ("policy_dir", "chalicelib", "app", "powertools"):
        assert Path(loaded[key]).resolve().is_relative_to(task), f"{key} came from {loaded[key]}, not the zip"
    assert Path(loaded["policy_dir"]).resolve() == task / "policies"
    assert CONTROL_IDS <= set(loaded["controls"]), loaded["controls"]
    assert all(loaded["handlers"].values()), loaded["handlers"]


@pytest.mark.parametrize("stage", STAGES)
def test_template_passes_cfn_lint(packaged: dict[str, Path], stage: str) -> None:
    # No rule is ignored: exit status 0 means no error, warning or informational finding.
    result = subprocess.run([_tool("cfn-lint"), str(packaged[stage] / "sam.json")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"cfn-lint ({result.returncode}):\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("stage", STAGES)
def test_event_rules_carry_the_app_patterns(packaged: dict[str, Path], stage: str) -> None:
    from chalicelib.handlers import event_patterns
    from chalicelib.policy import load_policy

    expected = event_patterns(load_policy())
    functions = _functions(_template(packaged[stage]))
    # The other functions run on a schedule, an SQS queue or AWS Config (tests/packaging/test_stack.py).
    rules = {name: props for name, props in functions.items()
             if any(e["Type"] == "CloudWatchEvent" for e in props.get("Events", {}).values())}
    assert set(rules) == set(expected), (sorted(rules), sorted(expected))
    for name, props in rules.items():
        events = list(props.get("Events", {}).values())
        assert len(events) == 1, f"{name}: {events}"
        assert events[0]["Type"] == "CloudWatchEvent"
        assert (json.dumps(events[0]["Properties"]["Pattern"], sort_keys=True)
                == json.dumps(expected[name], sort_keys=True))


@pytest.mark.parametrize("stage", STAGES)
def test_functions_get_the_stage_configuration(packaged: dict[str, Path], stage: str) -> None:
    from chalicelib.settings import Settings

    template = _template(packaged[stage])
    wanted = _stage_env(stage)
    for name, props in _functions(template).items():
        variables = props["Environment"]["Variables"]
        for key in REQUIRED_ENV:
            assert variables.get(key), f"{stage} {name}: {key} not set"
        assert variables == wanted
        assert variables["NETGUARD_MODE"] == EXPECTED_MODE[stage]
        assert variables["NETGUARD_LEDGER_TABLE"] == f"netguard-ledger-{stage}"
        settings = Settings.from_env(variables)  # the values parse the way the Lambda will read them
        assert settings.ledger_table and settings.alert_topic_arn and settings.slack_webhook_param
        assert props["Runtime"] == "python3.11"
        own = _config().get("lambda_functions", {}).get(name, {})  # per-function settings of config.json
        assert props["Timeout"] == own.get("lambda_timeout", _config()["lambda_timeout"])
        assert props["MemorySize"] == own.get("lambda_memory_size", _config()["lambda_memory_size"])
        assert props["Tracing"] == ("Active" if _config()["stages"][stage].get("xray") else "PassThrough")


@pytest.mark.parametrize("stage", STAGES)
def test_roles_carry_the_stage_policy_file(packaged: dict[str, Path], stage: str) -> None:
    template = _template(packaged[stage])
    config = _config()
    policy = json.loads((ROOT / ".chalice" / config["stages"][stage]["iam_policy_file"]).read_text(encoding="utf-8"))
    functions = _functions(template)
    for props in functions.values():
        role = template["Resources"][props["Role"]["Fn::GetAtt"][0]]
        assert role["Type"] == "AWS::IAM::Role"
        documents = [p["PolicyDocument"] for p in role["Properties"]["Policies"]]
        assert documents == [policy]
        assert "ManagedPolicyArns" not in role["Properties"]
