"""Sweep at scale: one account-region of thousands of mixed resources, netguard against Cloud
Custodian's pull mode on the same world, through a BenchServer (moto over HTTP, counting every
request, optionally adding a fixed delay to each).

For each size, a fresh server; this process builds the world over HTTP (benchmarks/worlds.py:
`mixed`); then, for each delay, each tool runs in a fresh Python process:
- netguard: the sweep worker of the account-region, as the Lambda runs it (ledger in DynamoDB, part
  report and summary to S3, alerts and digest to SNS), NETGUARD_MODE=alert (each tool reports; no
  remediation, so every run sees the same world; a fresh ledger table per run);
- Custodian: benchmarks/custodian/pull.yml in pull mode with --dryrun (filters, no actions).
Figures: resources, violations found, AWS calls (counted by the server), wall time, peak memory
(the process's maximum RSS; with --heap, for netguard also the Python heap's peak as tracemalloc sees
it: tracemalloc slows every allocation, so it is off for the timed runs by default).
Prints a table; never asserts.

    .venv/bin/python benchmarks/sweep.py [--sizes 2000,10000] [--delays 0,25] [--tools netguard,custodian]

netguard evaluates all of the baseline's controls on every resource type; Custodian's policies cover
the five controls it can express (notebook direct internet, training isolation, open ingress, flow
logs, VPC DNS). `NETGUARD_BENCH_PROFILE=1` prints netguard's cProfile to stderr (the main thread's:
with NETGUARD_READ_CONCURRENCY=1 all of it).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
CUSTODIAN_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
from worlds import BUCKET, REGION  # noqa: E402


def run_netguard(chunk: int, table: str, heap: bool = False) -> dict[str, Any]:
    """In a fresh process: the sweep worker of one account-region, as the Lambda runs it."""
    import tracemalloc

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import boto3

    from chalicelib import handlers
    from netguard_testkit.world import create_ledger_table

    session = boto3.session.Session(region_name=REGION)
    create_ledger_table(session.client("dynamodb"), table)
    topic = session.client("sns").list_topics()["Topics"][0]["TopicArn"]
    os.environ.update(NETGUARD_LEDGER_TABLE=table, NETGUARD_ALERT_TOPIC_ARN=topic, NETGUARD_MODE="alert",
                      NETGUARD_REPORT_BUCKET=BUCKET, NETGUARD_REGIONS=REGION, NETGUARD_SWEEP_CHUNK=str(chunk),
                      POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")
    rt = handlers.runtime()
    from chalicelib.sweep import start_sweep

    imported_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bench_control("reset")
    if heap:
        tracemalloc.start()
    started = time.perf_counter()
    result = start_sweep(rt.sweep_deps(handlers.EmfTelemetry()))
    seconds = time.perf_counter() - started
    heap_peak = tracemalloc.get_traced_memory()[1] if heap else None
    tracemalloc.stop()
    calls = bench_control("calls", "GET")
    server_seconds = bench_control("seconds", "GET")
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    stats = rt.ledger.sweep_stats(result["sweep_id"])[0]
    summary_key = f"netguard/sweeps/{result['sweep_id']}/summary.json"
    summary = json.loads(session.client("s3").get_object(Bucket=BUCKET, Key=summary_key)["Body"].read())
    return {"resources": stats["resources"], "violations": sum(stats["violations"].values()),
            "violations_by_control": stats["violations"], "alerts": stats["alerts"], "errors": stats["error_count"],
            "calls": calls, "server_seconds": server_seconds, "seconds": seconds,
            "cpu_seconds": cpu.ru_utime + cpu.ru_stime, "baseline_rss_kb": baseline_rss,
            "imported_rss_kb": imported_rss,
            "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            **({"heap_peak_bytes": heap_peak} if heap else {}),
            "report": f"s3://{BUCKET}/{summary_key}", "summary_reports": len(summary["reports"])}


def bench_control(what: str, method: str = "POST") -> Any:
    from per_event import bench_control as control

    return control(what, method)


def run_tool(tool: str, server: Any, chunk: int, run: int, heap: bool = False) -> dict[str, Any]:
    env = {**server.env(), "PYTHONPATH": str(ROOT)}
    if tool == "netguard":
        env.update({k: v for k, v in os.environ.items()
                    if k in ("NETGUARD_BENCH_PROFILE", "NETGUARD_READ_CONCURRENCY")})
        command = [sys.executable, __file__, "--run-netguard", "--chunk", str(chunk), "--table", f"ledger-{run}",
                   *(["--heap"] if heap else [])]
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=7200)
        if env.get("NETGUARD_BENCH_PROFILE"):
            sys.stderr.write(out.stderr[-24000:])
    else:
        env.pop("PYTHONPATH")
        with tempfile.TemporaryDirectory() as output:
            server.reset()  # Custodian's process counts from its start: its STS and listing calls included
            started = time.perf_counter()
            out = subprocess.run([str(CUSTODIAN_PYTHON), str(HERE / "custodian_run.py"), "pull", "--policies",
                                  str(HERE / "custodian" / "pull.yml"), "--output", output, "--dryrun"],
                                 env=env, capture_output=True, text=True, timeout=7200)
            process_seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{tool} sweep failed:\n{out.stderr[-4000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if tool == "custodian":
        policies = figures["policies"]
        figures.update(calls=server.calls(), server_seconds=server.seconds(), process_seconds=process_seconds,
                       resources=sum(p["resources"] for p in policies.values()),
                       violations=sum(p["matched"] for p in policies.values()))
    return figures


def measure(size: int, delays: list[float], tools: list[str], chunk: int, heap: bool = False) -> list[dict[str, Any]]:
    from motoserver import BenchServer
    from worlds import base, census, mixed

    rows = []
    with BenchServer.start() as server:
        saved = dict(os.environ)
        os.environ.update(server.env())
        try:
            started = time.perf_counter()
            built = base()
            mixed(built, size)
            build_seconds = time.perf_counter() - started
            world = census(built)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        print(f"  world {size}: {world}, built in {build_seconds:.0f} s", file=sys.stderr)
        for delay in delays:
            server.set_delay(delay)
            for tool in tools:
                figures = run_tool(tool, server, chunk, len(rows), heap)
                rows.append({"tool": tool, "size": size, "delay_ms": delay, "world": world,
                             "world_resources": sum(world.values()), **figures})
                print(f"  {tool} {size} +{delay:g} ms: {sum(figures['calls'].values())} calls, "
                      f"{figures['seconds']:.1f} s", file=sys.stderr)
            server.set_delay(0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--delays", default="0,25", help="ms added to every request, one pass each")
    parser.add_argument("--tools", default="netguard,custodian")
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--heap", action="store_true", help="also trace netguard's Python heap (slower)")
    parser.add_argument("--run-netguard", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_netguard:
        if os.environ.get("NETGUARD_BENCH_PROFILE"):  # where the sweep's time goes, on stderr
            import cProfile
            import pstats

            profile = cProfile.Profile()
            figures = profile.runcall(run_netguard, args.chunk, args.table, args.heap)
            if os.environ["NETGUARD_BENCH_PROFILE"].endswith(".prof"):  # a file name: the whole profile too
                profile.dump_stats(os.environ["NETGUARD_BENCH_PROFILE"])
            stats = pstats.Stats(profile, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(r"chalicelib|benchmarks", 40)
            stats.sort_stats("tottime").print_stats(25)  # own time, any module (botocore's parsing included)
        else:
            figures = run_netguard(args.chunk, args.table, args.heap)
        print(json.dumps(figures))
        return
    tools = args.tools.split(",")
    if "custodian" in tools and not CUSTODIAN_PYTHON.exists():
        raise SystemExit(f"{CUSTODIAN_PYTHON} is missing: `make .venv-bench` installs Cloud Custodian")
    delays = [float(d) for d in args.delays.split(",")]
    rows = [row for size in args.sizes.split(",") for row in measure(int(size), delays, tools, args.chunk, args.heap)]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print_table(rows, tools, args.chunk)


def print_table(rows: list[dict[str, Any]], tools: list[str], chunk: int) -> None:
    print(f"sweep of one account-region through a moto server over HTTP (netguard chunk {chunk}); "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("calls/resource and resources/s are over the world's notebooks, training jobs, security groups and "
          "VPCs (what both tools evaluate); 'evaluated' is each tool's own count")
    print("| tool | world | delay/request | evaluated | violations | AWS calls | calls/resource | "
          "seconds | resources/s | peak RSS MB | process CPU s | heap peak MB |")
    print("|---" * 12 + "|")
    for r in rows:
        total = sum(r["calls"].values())
        heap = f"{r['heap_peak_bytes'] / 2**20:.1f}" if "heap_peak_bytes" in r else "-"
        print("| " + " | ".join(str(v) for v in (
            r["tool"], f"{r['world_resources']:,}", f"{r['delay_ms']:g} ms", f"{r['resources']:,}", r["violations"],
            f"{total:,}", f"{total / r['world_resources']:.2f}", f"{r['seconds']:.1f}",
            f"{r['world_resources'] / r['seconds']:.0f}",
            f"{r['peak_rss_kb'] / 1024:.0f}", f"{r['cpu_seconds']:.1f}", heap)) + " |")
    keyed = {(r["tool"], r["size"], r["delay_ms"]): r for r in rows}
    if len(tools) == 2:
        print("\nnetguard against Custodian, same world and delay: throughput (resources/s) ratio, "
              "calls/resource ratio")
        for (tool, size, delay), r in keyed.items():
            other = keyed.get(("custodian", size, delay))
            if tool == "netguard" and other:
                a, b = sum(r["calls"].values()), sum(other["calls"].values())
                speed = other["seconds"] / r["seconds"]  # same world: throughput ratio is the time ratio
                print(f"  {size:,} resources, +{delay:g} ms: throughput x{speed:.2f}, calls/resource x{a / b:.2f}")
    for r in rows:
        top = sorted(r["calls"].items(), key=lambda kv: -kv[1])[:10]
        busiest = sorted(r["server_seconds"].items(), key=lambda kv: -kv[1])[:6]
        print(f"\n{r['tool']} {r['size']:,} +{r['delay_ms']:g} ms ({r['world']}): most frequent calls: "
              + ", ".join(f"{k} {n}" for k, n in top))
        print(f"  moto's own time {sum(r['server_seconds'].values()):.1f} s, most in: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in busiest)
              + f"; the tool's process used {r['cpu_seconds']:.1f} s of CPU")
        if r["tool"] == "netguard":
            print(f"  report {r['report']} ({r['summary_reports']} part report), errors {r['errors']}, "
                  f"alerts {r['alerts']}, violations by control {r['violations_by_control']}")
        else:
            print(f"  policies {r['policies']}")


if __name__ == "__main__":
    main()
