"""Per event: AWS calls and handler time of one CloudTrail event, netguard against Cloud Custodian,
in accounts of 10 and of 5,000 notebooks (a BenchServer: moto over HTTP, counting every request).

Events: CreateNotebookInstance (a notebook with direct internet access in a public subnet),
CreateTrainingJob (a running job without network isolation), AuthorizeSecurityGroupIngress (SSH
open to 0.0.0.0/0 on a group in use). Both tools enforce: netguard in enforce mode, Custodian's
equivalent cloudtrail-mode policies (benchmarks/custodian/events.yml) through its Lambda entry.

Each (tool, event) runs in a fresh process, as a warm Lambda container: a first event of the same
kind (on another resource) warms it, then the counts are reset and the measured event runs. The
calls are counted by the server; the time is the handler's, in that process. With --delays 0,25 the
whole table is measured twice: on the plain server and with 25 ms added to every request.

    .venv/bin/python benchmarks/per_event.py [--sizes 10,5000] [--delays 0,25] [--tools netguard,custodian]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
CUSTODIAN_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
KINDS = ("CreateNotebookInstance", "CreateTrainingJob", "AuthorizeSecurityGroupIngress")


def bench_control(what: str, method: str = "POST") -> Any:
    """The BenchServer's counts, from inside a tool's process (AWS_ENDPOINT_URL is the server)."""
    request = urllib.request.Request(f"{os.environ['AWS_ENDPOINT_URL']}/_bench/{what}", method=method,
                                     data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


# ------------------------------------------------------------------------------- the two events


def violation(world: Any, kind: str, name: str) -> dict[str, Any]:
    """Make one violation of `kind` named after `name` in the world; return its CloudTrail event."""
    from worlds import OPEN_SSH, REGION, create_training_job

    from netguard_testkit import events
    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import create_notebook, ingress_rule_ids

    net, account = world.net, world.account
    if kind == "CreateNotebookInstance":
        create_notebook(world.session.client("sagemaker"), account, name, net.public_subnet, [net.sg_notebook_ok])
        return events.create_notebook(name, account, REGION, net.public_subnet, [net.sg_notebook_ok])
    if kind == "CreateTrainingJob":
        create_training_job(world, name, net, isolated=False)
        arn = f"arn:aws:sagemaker:{REGION}:{account}:training-job/{name}"
        request = {"trainingJobName": name, "roleArn": world.role, "enableNetworkIsolation": False,
                   "vpcConfig": {"subnets": list(net.private_subnets), "securityGroupIds": [net.sg_notebook_ok]}}
        return events.api_call("CreateTrainingJob", "aws.sagemaker", request, {"trainingJobArn": arn}, account, REGION)
    ec2 = world.session.client("ec2")
    gid = ec2.create_security_group(GroupName=name, Description="bench", VpcId=net.vpc_id)["GroupId"]
    attach_notebook_eni(ec2, net.private_subnets[0], [gid], name)
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=OPEN_SSH)
    rules = list(ingress_rule_ids(ec2, gid).values())
    return events.authorize_ingress(gid, OPEN_SSH, account, REGION, rule_set=rules)


# ------------------------------------------------------------------------- in the tool's process


def measured(handle: Callable[[dict[str, Any]], Any], warmup: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    handle(warmup)
    bench_control("reset")
    started = time.perf_counter()
    handle(event)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "calls": bench_control("calls", "GET")}


def run_netguard(events_file: str) -> dict[str, Any]:
    """As the Lambda runs it: app.on_api_call(event, context), enforce mode, ledger in DynamoDB."""
    from worlds import REGION, TABLE

    warmup, event = json.loads(Path(events_file).read_text())
    import boto3

    topic = boto3.client("sns", region_name=REGION).list_topics()["Topics"][0]["TopicArn"]
    os.environ.update(NETGUARD_LEDGER_TABLE=TABLE, NETGUARD_ALERT_TOPIC_ARN=topic, NETGUARD_MODE="enforce",
                      POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")
    import app

    context = type("Context", (), {"function_name": "netguard-bench-on_api_call", "aws_request_id": "bench",
                                   "memory_limit_in_mb": 512, "invoked_function_arn": "arn:aws:lambda:us-east-1:"
                                   "123456789012:function:netguard-bench-on_api_call",
                                   "get_remaining_time_in_millis": staticmethod(lambda: 60_000)})()
    answers: list[Any] = []
    figures = measured(lambda e: answers.append(app.on_api_call(e, context)), warmup, event)
    outcomes = [f"{d['control']}:{d['result']}" for d in answers[-1].get("decisions", [])]
    return {**figures, "outcome": ", ".join(outcomes)}


# ------------------------------------------------------------------------------------ the harness


def tool_run(tool: str, server: Any, world: Any, kind: str, tag: str, delay: float) -> dict[str, Any]:
    server.set_delay(0)  # build quickly; measure with the delay asked for
    warmup = violation(world, kind, f"warm-{tag}")
    event = violation(world, kind, f"meas-{tag}")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([warmup, event], f)
    try:
        env = {**server.env(), "PYTHONPATH": str(ROOT)}
        if tool == "netguard":
            command = [sys.executable, __file__, "--run-netguard", f.name]
        else:
            command = [str(CUSTODIAN_PYTHON), str(HERE / "custodian_run.py"), "event", "--policies",
                       str(HERE / "custodian" / "events.yml"), "--event", f.name]
            env.pop("PYTHONPATH")
        server.set_delay(delay)
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise SystemExit(f"{tool} {kind} failed:\n{out.stderr[-4000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(f.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,5000")
    parser.add_argument("--delays", default="0,25", help="ms added to every request, one pass each")
    parser.add_argument("--tools", default="netguard,custodian")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--run-netguard", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_netguard:
        print(json.dumps(run_netguard(args.run_netguard)))
        return
    from motoserver import BenchServer
    from worlds import add_notebooks, base

    tools = args.tools.split(",")
    if "custodian" in tools and not CUSTODIAN_PYTHON.exists():
        raise SystemExit(f"{CUSTODIAN_PYTHON} is missing: `make .venv-bench` installs Cloud Custodian")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with BenchServer.start() as server:
            saved = dict(os.environ)
            os.environ.update(server.env())
            try:
                world = base()
                add_notebooks(world, size)
                for delay in (float(d) for d in args.delays.split(",")):
                    for kind in KINDS:
                        for tool in tools:
                            tag = f"{tool[:2]}-{int(delay)}-{KINDS.index(kind)}"
                            r = tool_run(tool, server, world, kind, tag, delay)
                            rows.append({"tool": tool, "notebooks": size, "delay_ms": delay, "event": kind, **r})
                            print(f"  {tool} {kind} in {size} notebooks, +{delay:g} ms: "
                                  f"{sum(r['calls'].values())} calls, {r['seconds'] * 1000:.0f} ms", file=sys.stderr)
            finally:
                os.environ.clear()
                os.environ.update(saved)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print_table(rows, tools)


def print_table(rows: list[dict[str, Any]], tools: list[str]) -> None:
    print(f"per event (warm container), calls counted by the moto server; {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print("| event | notebooks in account | delay/request | " + " | ".join(
        f"{t} calls | {t} ms" for t in tools) + (" | calls ratio | time ratio |" if len(tools) == 2 else " |"))
    print("|---" * (3 + 2 * len(tools) + (2 if len(tools) == 2 else 0)) + "|")
    keyed = {(r["tool"], r["notebooks"], r["delay_ms"], r["event"]): r for r in rows}
    for delay in sorted({r["delay_ms"] for r in rows}):
        for kind in KINDS:
            for size in sorted({r["notebooks"] for r in rows}):
                cells = [kind, f"{size:,}", f"{delay:g} ms"]
                got = [keyed.get((t, size, delay, kind)) for t in tools]
                for r in got:
                    cells += [str(sum(r["calls"].values())), f"{r['seconds'] * 1000:.0f}"] if r else ["-", "-"]
                if len(got) == 2 and all(got):
                    a, b = (sum(r["calls"].values()) for r in got)  # type: ignore[union-attr]
                    cells += [f"{a / b:.2f}" if b else "-", f"{got[0]['seconds'] / got[1]['seconds']:.2f}"]  # type: ignore[index]
                print("| " + " | ".join(cells) + " |")
    print("\ncalls of each measured event:")
    for r in rows:
        print(f"  {r['tool']:<9} {r['event']:<30} {r['notebooks']:>5} nb +{r['delay_ms']:g} ms: "
              + ", ".join(f"{k} {n}" for k, n in sorted(r["calls"].items()))
              + (f"  [{r['outcome']}]" if r.get("outcome") else ""))


if __name__ == "__main__":
    main()
