"""`netguard check` as a user runs it: the installed command in a child process (exit status, reports on stdout or
in a file, errors on stderr), and the demo's step that checks a template."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "iac"
NETGUARD = Path(sys.executable).parent / "netguard"


def netguard(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETGUARD_", "AWS_"))}
    return subprocess.run([str(NETGUARD), *args], capture_output=True, text=True, timeout=300, env=env)


def test_the_installed_command_checks_a_template_and_a_plan(tmp_path):
    clean = netguard("check", str(FIXTURES / "secure-architecture.yaml"),
                     str(FIXTURES / "secure-architecture.tfplan.json"), "--region", "us-east-1")
    assert clean.returncode == 0, clean.stderr
    assert "no NON_COMPLIANT finding" in clean.stdout and clean.stderr == ""
    sarif = tmp_path / "check.sarif"
    found = netguard("check", str(FIXTURES / "deviation-model-no-isolation.tfplan.json"), "--format", "sarif",
                     "-o", str(sarif))
    assert found.returncode == 1 and found.stdout == ""
    assert [r["ruleId"] for r in json.loads(sarif.read_text())["runs"][0]["results"]] == ["MD.1"]
    bad = netguard("check", str(tmp_path / "nothing.json"))
    assert bad.returncode == 2 and bad.stderr.strip() == f"netguard: {tmp_path / 'nothing.json'}: no such file"
    assert "check" in netguard("--help").stdout


def test_the_demo_checks_a_template_before_deploy():
    from netguard_demo.run import Printer, show_check

    out = io.StringIO()
    show_check(Printer(out), out)
    text = out.getvalue()
    assert "11. netguard check tests/fixtures/iac/deviation-notebook-internet.yaml --region us-east-1" in text
    assert "NB.1     high      Notebook  NotebookInstance" in text
    assert "exit status 1" in text
