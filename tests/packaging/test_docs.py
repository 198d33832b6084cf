"""The README stays true: the controls table is the policies', every NETGUARD_ variable is documented."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import controls_table

from chalicelib.policy import load_policy

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_control_table_is_generated_from_the_policies():
    assert controls_table.block(load_policy()) in README, "run tools/controls_table.py --write"


def test_every_netguard_variable_the_code_reads_is_documented():
    used = set()
    for path in (ROOT / "chalicelib").glob("*.py"):
        used |= set(re.findall(r"NETGUARD_[A-Z_]+", path.read_text(encoding="utf-8")))
    assert used, "the scan found no variable at all"
    missing = sorted(v for v in used if f"`{v}`" not in README)
    assert not missing, missing


def test_readme_starts_with_the_two_commands():
    head = README[:1500]
    assert "make demo" in head and "make test" in head
