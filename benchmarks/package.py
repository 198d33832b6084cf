"""Package: the deployment zip's size and what of it a cold start imports.

Builds the package as users do (`make package STAGE=prod`, unless --zip names an existing one), then
prints the zip's size by top-level entry, and the import graph of a first invocation (import app,
then handlers.runtime(), in a fresh interpreter): modules by origin (netguard, packaged
dependencies, the Lambda runtime's boto3/botocore, the standard library) with their file sizes.
Figures only.

    .venv/bin/python benchmarks/package.py [--zip build/deployment.zip]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 5
RUNTIME = {"boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six"}  # provided by the Lambda runtime

GRAPH = """
import json, sys, sysconfig
import app
from chalicelib import handlers
handlers.runtime()
stdlib = sysconfig.get_paths()["stdlib"]
out = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) or ""
    out[name] = [path, path.startswith(stdlib) and "site-packages" not in path]
print(json.dumps(out))
"""


def import_graph(packaged: set[str]) -> dict[str, tuple[int, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NETGUARD_"))}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
               NETGUARD_LEDGER_TABLE="netguard-ledger-bench")
    out = subprocess.run([sys.executable, "-c", GRAPH], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    groups: dict[str, list[int]] = {}
    for name, (path, in_stdlib) in json.loads(out.stdout).items():
        top = name.split(".")[0]
        if top in ("app", "chalicelib"):
            origin = "netguard (app.py, chalicelib)"
        elif top in packaged:
            origin = "packaged dependencies"
        elif top in RUNTIME:
            origin = "Lambda runtime (boto3, botocore, ...)"
        elif in_stdlib or not path:
            origin = "standard library and built-ins"
        else:
            origin = f"other ({top})"
        size = Path(path).stat().st_size if path and Path(path).is_file() else 0
        groups.setdefault(origin, [0, 0])
        groups[origin][0] += 1
        groups[origin][1] += size
    return {k: (v[0], v[1]) for k, v in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", help="measure this zip instead of building one")
    args = parser.parse_args()
    path = Path(args.zip) if args.zip else ROOT / "build" / "deployment.zip"
    if not args.zip:
        subprocess.run(["make", "-s", "package", "STAGE=prod"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    archive = zipfile.ZipFile(path)
    sizes: Counter[str] = Counter()
    files: Counter[str] = Counter()
    for info in archive.infolist():
        top = info.filename.split("/")[0]
        sizes[top] += info.compress_size
        files[top] += 1
    total = path.stat().st_size
    print(f"deployment package {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
          f"{total / 2**20:.2f} MB ({total:,} bytes, target <= {TARGET_MB} MB), {sum(files.values())} files, "
          f"{sum(i.file_size for i in archive.infolist()) / 2**20:.2f} MB unzipped")
    print("| in the zip | compressed KB | files |\n|---|---|---|")
    for top, size in sizes.most_common(8):
        print(f"| {top} | {size / 1024:.0f} | {files[top]} |")
    packaged = {name.split("-")[0].removesuffix(".py") for name in files if not name.endswith((".dist-info", ".data"))}
    graph = import_graph(packaged)
    print("\nimport graph of a first invocation (import app + handlers.runtime()):")
    print("| origin | modules | KB on disk |\n|---|---|---|")
    for origin, (count, size) in sorted(graph.items(), key=lambda kv: -kv[1][0]):
        print(f"| {origin} | {count} | {size / 1024:.0f} |")
    modules = [i.filename for i in archive.infolist() if i.filename.endswith(".py")
               and i.filename.split("/")[0].removesuffix(".py") not in ("app", "chalicelib")]
    print(f"\n{graph.get('packaged dependencies', (0, 0))[0]} of the {len(modules)} Python modules of packaged "
          "dependencies are imported at cold start")


if __name__ == "__main__":
    main()
