"""Sweep at scale: one account-region of thousands of resources, through a moto server over HTTP.

For each size, a fresh moto server (with netguard_demo's AWS-like SageMaker behaviour) runs in its
own process; this process builds the world over HTTP; then a fresh Python process runs the sweep
worker exactly as the Lambda does (ledger in DynamoDB, report to S3, alerts to SNS, digest), and
reports its figures: resources, AWS calls by service, wall time, and peak memory (the process's
maximum RSS, and the Python heap's peak as tracemalloc sees it during the sweep). Prints a table;
never asserts.

    .venv/bin/python benchmarks/sweep.py [--sizes 1000,5000] [--chunk 200]

World per size N (resources netguard evaluates): about 70% notebooks (1 in 20 with direct internet
in a public subnet, InService: stopped), 10% running training jobs (1 in 10 without network
isolation: stopped), 15% security groups (1 in 25 with SSH open to the world, on a notebook's
network interface: revoked), and VPCs with two private subnets each (the rest).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REGION = "us-east-1"
TABLE = "netguard-ledger-bench"
BUCKET = "netguard-reports-bench"

SERVER = """
import logging, sys, time
from moto.server import ThreadedMotoServer
from netguard_demo.moto_sagemaker import aws_like_sagemaker
logging.getLogger("werkzeug").setLevel(logging.ERROR)
# Jobs run (InProgress) and stop as on AWS. Notebooks keep moto's InService start: this world has
# been running for a while, so every notebook is InService (what a sweep finds).
with aws_like_sagemaker():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETGUARD_", "AWS_"))}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION, PYTHONPATH=str(ROOT))
    return env


def build_world(size: int) -> dict[str, int]:
    """N evaluated resources in one account-region (see module docstring)."""
    import boto3

    from netguard_demo.moto_fidelity import attach_notebook_eni
    from netguard_demo.world import TAGS, build_network, create_alert_channels, create_ledger_table, \
        create_notebook, remove_default_vpc

    session = boto3.session.Session(region_name=REGION)
    ec2, sm = session.client("ec2"), session.client("sagemaker")
    account = session.client("sts").get_caller_identity()["Account"]
    remove_default_vpc(ec2)
    create_ledger_table(session.client("dynamodb"), TABLE)
    create_alert_channels(session.client("sns"), session.client("sqs"), session.client("ssm"), None)
    session.client("s3").create_bucket(Bucket=BUCKET)
    notebooks, jobs, groups = int(size * 0.70), int(size * 0.10), int(size * 0.15)
    vpcs = max(1, (size - notebooks - jobs - groups) // 4)  # a VPC and its subnets, default group: ~4 resources
    nets = [build_network(ec2, account, REGION) for _ in range(vpcs)]
    extra_groups = []
    for i in range(groups):
        net = nets[i % len(nets)]
        gid = ec2.create_security_group(GroupName=f"bench-{i}", Description="bench", VpcId=net.vpc_id)["GroupId"]
        if i % 25 == 0:
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
            attach_notebook_eni(ec2, net.private_subnets[0], [gid], f"nb-{i}")
        extra_groups.append(gid)
    for i in range(notebooks):
        net = nets[i % len(nets)]
        bad = i % 20 == 0
        create_notebook(sm, account, f"nb-{i:05d}", net.public_subnet if bad else net.private_subnets[i % 2],
                        [net.sg_notebook_ok], direct_internet="Enabled" if bad else "Disabled")
    role = f"arn:aws:iam::{account}:role/sagemaker"
    for i in range(jobs):
        net = nets[i % len(nets)]
        sm.create_training_job(
            TrainingJobName=f"train-{i:05d}", RoleArn=role, EnableNetworkIsolation=i % 10 != 0,
            AlgorithmSpecification={"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                    "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": "s3://bench/out"}, StoppingCondition={"MaxRuntimeInSeconds": 3600},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            VpcConfig={"Subnets": list(net.private_subnets), "SecurityGroupIds": [net.sg_notebook_ok]},
            Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])
    return {"notebooks": notebooks, "training_jobs": jobs, "security_groups": groups, "vpcs": vpcs}


def run_sweep(chunk: int) -> dict[str, Any]:
    """In a fresh process: the sweep worker of one account-region, as the Lambda runs it."""
    import tracemalloc

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import boto3

    from chalicelib import handlers

    calls: dict[str, int] = {}
    lock = threading.Lock()  # the sweep reads concurrently (NETGUARD_READ_CONCURRENCY)

    def count(model: Any = None, **_: Any) -> None:
        key = f"{model.service_model.service_name}:{model.name}"
        with lock:
            calls[key] = calls.get(key, 0) + 1

    session = boto3.session.Session(region_name=REGION)
    session.events.register("before-call.*.*", count)
    topic = session.client("sns").list_topics()["Topics"][0]["TopicArn"]
    os.environ.update(NETGUARD_LEDGER_TABLE=TABLE, NETGUARD_ALERT_TOPIC_ARN=topic, NETGUARD_MODE="enforce",
                      NETGUARD_REPORT_BUCKET=BUCKET, NETGUARD_REGIONS=REGION, NETGUARD_SWEEP_CHUNK=str(chunk),
                      POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")
    from chalicelib.aws import Clients

    handlers.make_clients = lambda settings: Clients(session)
    rt = handlers.runtime()
    from chalicelib.sweep import start_sweep

    imported_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    result = start_sweep(rt.sweep_deps(handlers.EmfTelemetry()))
    seconds = time.perf_counter() - started
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = rt.ledger.sweep_stats(result["sweep_id"])[0]
    summary_key = f"netguard/sweeps/{result['sweep_id']}/summary.json"
    summary = json.loads(session.client("s3").get_object(Bucket=BUCKET, Key=summary_key)["Body"].read())
    return {"resources": stats["resources"], "violations": sum(stats["violations"].values()),
            "remediated": stats["remediated"], "alerts": stats["alerts"], "errors": stats["error_count"],
            "calls": calls, "seconds": seconds, "baseline_rss_kb": baseline_rss, "imported_rss_kb": imported_rss,
            "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "heap_peak_bytes": heap_peak,
            "report": f"s3://{BUCKET}/{summary_key}", "summary_reports": len(summary["reports"])}


def measure(size: int, chunk: int) -> dict[str, Any]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = env_for(endpoint)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            started = time.perf_counter()
            world = build_world(size)
            build_seconds = time.perf_counter() - started
        finally:
            os.environ.clear()
            os.environ.update(saved)
        env.update({k: v for k, v in os.environ.items() if k == "NETGUARD_BENCH_PROFILE"})
        out = subprocess.run([sys.executable, __file__, "--run-sweep", "--chunk", str(chunk)], env=env,
                             capture_output=True, text=True, timeout=3600)
        if env.get("NETGUARD_BENCH_PROFILE"):
            sys.stderr.write(out.stderr[-12000:])
        if out.returncode != 0:
            raise SystemExit(f"sweep of {size} failed:\n{out.stderr[-4000:]}")
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        return {"size": size, "world": world, "build_seconds": build_seconds, **figures}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--run-sweep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_sweep:
        if os.environ.get("NETGUARD_BENCH_PROFILE"):  # where the sweep's time goes, on stderr
            import cProfile
            import pstats

            profile = cProfile.Profile()
            figures = profile.runcall(run_sweep, args.chunk)
            pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        else:
            figures = run_sweep(args.chunk)
        print(json.dumps(figures))
        return
    rows = [measure(int(s), args.chunk) for s in args.sizes.split(",")]
    print(f"sweep of one account-region through a moto server over HTTP (chunk {args.chunk}); "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    header = ("resources", "violations", "remediated", "AWS calls", "calls/resource", "seconds", "resources/s",
              "peak RSS MB", "RSS over imports MB", "heap peak MB")
    print(" | ".join(header))
    for r in rows:
        total = sum(r["calls"].values())
        print(" | ".join(str(v) for v in (
            r["resources"], r["violations"], r["remediated"], total, f"{total / max(r['resources'], 1):.2f}",
            f"{r['seconds']:.1f}", f"{r['resources'] / r['seconds']:.0f}", f"{r['peak_rss_kb'] / 1024:.0f}",
            f"{(r['peak_rss_kb'] - r['imported_rss_kb']) / 1024:.0f}", f"{r['heap_peak_bytes'] / 2**20:.1f}")))
    for r in rows:
        by_service: dict[str, int] = {}
        for key, n in r["calls"].items():
            by_service[key.split(":")[0]] = by_service.get(key.split(":")[0], 0) + n
        top = sorted(r["calls"].items(), key=lambda kv: -kv[1])[:8]
        print(f"\n{r['size']} ({r['world']}; world built in {r['build_seconds']:.0f} s): calls by service {by_service}")
        print("  most frequent: " + ", ".join(f"{k} {n}" for k, n in top))
        print(f"  report {r['report']} ({r['summary_reports']} part report), errors {r['errors']}, "
              f"alerts {r['alerts']}")


if __name__ == "__main__":
    main()
