#!/usr/bin/env python3
"""Flights benchmark: caudal against the DuckDB, Polars and pandas peer scripts.

Run through `bash bench/flights.sh`, which prepares the data and venv, builds caudal in release
mode and calls this script with the bench venv's Python:

    python bench/flights.py --caudal PATH [--data DIR] [--peers DIR] [--quick] [--skip-x10]

For flights.csv (336,776 rows) and flights_x10.csv (3,367,760 rows) it times `caudal load` in a
fresh project and each peer script in a fresh output directory, reports median wall time and
peak RSS per tool, checks caudal's performance bars and verifies what caudal loaded into SQLite
and the Parquet lake. Exits non-zero if any run, check or bar fails.

Peak RSS comes from os.wait4(), i.e. the kernel's ru_maxrss of that one child (KiB on Linux).
Linux carries the parent's peak RSS over into a child's ru_maxrss across fork/vfork + exec, so a
child can never report less than this harness's own peak. The harness therefore stays small
while measuring: heavy modules (duckdb, pyarrow) are imported only for the verification, which
runs after every measurement. The floor is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from machine import cpu_model, git_describe, mem_total, repo_root, tail, versions

# The Python packages whose versions the report names.
PACKAGES = ("duckdb", "polars", "pandas", "pyarrow")

# Reference numbers for flights.csv; flights_x10.csv is ten copies, so ten times each.
SINGLE_ROWS = 336_776
SINGLE_DISTANCE_SUM = 350_217_607
SINGLE_NULL_ARR_DELAY = 9_430

# Performance bars.
BAR_WALL_VS_DUCKDB = 0.5  # caudal wall <= 0.5 x DuckDB wall (single file)
BAR_RSS_SINGLE_MB = 200  # caudal peak RSS (single file)
BAR_RSS_X10_MB = 300  # caudal peak RSS (x10)
BAR_X10_SCALING = 11  # caudal x10 wall <= 11 x caudal single-file wall

MIB = 1024 * 1024  # "MB" in this report means MiB (ru_maxrss is in KiB)

PEERS = [  # (tool name, script in the shared peers folder), in report order after caudal
    ("duckdb", "duckdb_script.py"),
    ("polars", "polars_script.py"),
    ("pandas", "pandas_script.py"),
]
TOOLS = ["caudal"] + [name for name, _ in PEERS]

# The caudal project used for every caudal run (format fixed by caudal).
CAUDAL_TOML = '''\
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[destinations.lake]
kind = "parquet"
path = "lake"

[pipelines.flights]
source = { kind = "folder", path = "incoming", format = "csv", null_values = ["", "NA"] }
contract = "contracts/flights.toml"
on_invalid = "quarantine"
transform = """
SELECT *, make_date(year, month, day) AS dep_date, arr_delay > 15 AS delayed,
       distance / (air_time / 60.0) AS speed_mph
FROM input
"""
load = [
  { into = "warehouse", table = "flights", mode = "append" },
  { into = "lake", table = "flights", partition_by = "dep_date" },
]
'''

# The contract for flights.csv. Every numeric column is a plain integer in the file (no value has
# a decimal point, NA marks missing values), so they are int64; time_hour is ISO-8601 UTC
# with a "Z" suffix ("2013-01-01T10:00:00Z"), so it needs no format or timezone.
CONTRACT_TOML = '''\
[columns]
year           = { type = "int64", required = true }
month          = { type = "int64", required = true, min = 1, max = 12 }
day            = { type = "int64", required = true, min = 1, max = 31 }
dep_time       = { type = "int64" }
sched_dep_time = { type = "int64" }
dep_delay      = { type = "int64" }
arr_time       = { type = "int64" }
sched_arr_time = { type = "int64" }
arr_delay      = { type = "int64" }
carrier        = { type = "string", required = true, pattern = "^[A-Z0-9]{2}$" }
flight         = { type = "int64", required = true }
tailnum        = { type = "string" }
origin         = { type = "string", required = true }
dest           = { type = "string", required = true }
air_time       = { type = "int64" }
distance       = { type = "int64", required = true, min = 1 }
hour           = { type = "int64" }
minute         = { type = "int64" }
time_hour      = { type = "timestamp", required = true }

[table]
min_rows = 1
extra_columns = "error"
'''


@dataclass
class Run:
    """One measured process."""

    wall: float  # seconds, spawn to reap
    rss_kib: int  # ru_maxrss of the child
    exit_code: int
    log: Path
    outdir: Path  # caudal project dir or peer output dir

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Result:
    """All repetitions of one tool on one input."""

    tool: str
    input: str
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def rss_mb(self) -> float:
        return max(r.rss_kib for r in self.runs) * 1024 / MIB


def parse_args() -> argparse.Namespace:
    bench_home = Path(os.environ.get("CAUDAL_BENCH_HOME", Path.home() / ".cache/caudal-bench"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--caudal", required=True, type=Path, help="path to the caudal release binary")
    ap.add_argument("--data", type=Path, default=bench_home / "data",
                    help="folder with flights.csv and flights_x10.csv (from get-data.sh)")
    ap.add_argument("--peers", type=Path, default=repo_root() / "../shared/bench/peers",
                    help="folder with the peer scripts")
    ap.add_argument("--workdir", type=Path, default=bench_home / "runs",
                    help="where the temporary project/output dirs are created (on disk, not tmpfs)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per measurement (default 3)")
    ap.add_argument("--quick", action="store_true", help="one repetition per measurement")
    ap.add_argument("--skip-x10", action="store_true", help="only the single file")
    ap.add_argument("--keep", action="store_true", help="keep all project/output dirs and logs")
    args = ap.parse_args()
    if args.quick:
        args.reps = 1
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    return args


# --------------------------------------------------------------------------------------------
# Reporting helpers


def print_header(args: argparse.Namespace) -> None:
    flags = [f for f, on in (("--quick", args.quick), ("--skip-x10", args.skip_x10)) if on]
    if not args.quick and args.reps != 3:
        flags.append(f"--reps {args.reps}")
    print("# caudal flights benchmark")
    print(f"reproduce: bash bench/flights.sh {' '.join(flags)}".rstrip())
    print(f"machine:   nproc {len(os.sched_getaffinity(0))}, CPU {cpu_model()}, "
          f"RAM {mem_total()}, {platform.system()} {platform.release()}")
    print(f"software:  caudal {git_describe(repo_root())} ({args.caudal}), {versions(PACKAGES)}")
    print(f"data:      {args.data}; {args.reps} repetition(s) per measurement, median wall, max RSS")
    print(flush=True)


# --------------------------------------------------------------------------------------------
# Measurement


def measure(argv: list[str], cwd: Path | None, log: Path, outdir: Path) -> Run:
    """Runs argv to completion; returns wall time and the child's own peak RSS."""
    # Flush what earlier runs left dirty in the page cache, untimed: otherwise a tool's own
    # syncs also wait for the writeback of whichever tool ran before it.
    os.sync()
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        # wait4 reaps exactly this child and returns its rusage; Popen.wait() would reap it
        # without exposing ru_maxrss.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is gone
    return Run(wall, usage.ru_maxrss, proc.returncode, log, outdir)


def warm_page_cache(path: Path) -> None:
    """Reads the input once so the first measured run does not pay for a cold disk."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def make_caudal_project(path: Path) -> None:
    (path / "contracts").mkdir(parents=True)
    (path / "incoming").mkdir()
    (path / "caudal.toml").write_text(CAUDAL_TOML)
    (path / "contracts/flights.toml").write_text(CONTRACT_TOML)


def run_tool(tool: str, csv: Path, rep: int, args: argparse.Namespace, work: Path) -> Run:
    label = f"{tool}-{csv.stem}-{rep}"
    outdir = work / label
    log = work / "logs" / f"{label}.log"
    if tool == "caudal":
        make_caudal_project(outdir)
        # cwd is the project, so caudal finds caudal.toml without --project.
        return measure([str(args.caudal), "load", str(csv), "-p", "flights"], outdir, log, outdir)
    script = args.peers / dict(PEERS)[tool]
    # The peer creates its (fresh, not yet existing) output dir itself.
    run = measure([sys.executable, str(script), str(csv), str(outdir)], None, log, outdir)
    if not args.keep:
        shutil.rmtree(outdir, ignore_errors=True)  # peer outputs are not verified
    return run


# --------------------------------------------------------------------------------------------
# Verification of caudal's output (runs after all measurements; imports heavy modules)


def verify_project(project: Path, scale: int) -> list[str]:
    """Checks warehouse.db and the lake of one caudal project; returns mismatch messages."""
    import duckdb  # noqa: PLC0415 (deferred on purpose, see module docstring)
    import pyarrow.dataset as pds  # noqa: PLC0415

    expect = (SINGLE_ROWS * scale, SINGLE_DISTANCE_SUM * scale, SINGLE_NULL_ARR_DELAY * scale)
    names = ("count(*)", "sum(distance)", "null arr_delay")
    problems: list[str] = []

    def compare(where: str, got: tuple) -> None:
        for name, g, e in zip(names, got, expect):
            if g is None or g != e:
                shown = f"{g:,}" if isinstance(g, int) else repr(g)
                problems.append(f"{where}: {name} = {shown}, expected {e:,}")

    # SQLite warehouse
    db = project / "warehouse.db"
    try:
        if not db.exists():
            raise FileNotFoundError(f"{db} does not exist")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            got = con.execute("select count(*), sum(distance), count(*) - count(arr_delay) "
                              "from flights").fetchone()
        finally:
            con.close()
        compare("sqlite warehouse.db flights", got)
    except Exception as e:  # noqa: BLE001 - any failure is a mismatch to report
        problems.append(f"sqlite warehouse.db flights: {type(e).__name__}: {e}")

    # Parquet lake through DuckDB (hive partitions)
    lake = project / "lake" / "flights"
    glob = str(lake / "**" / "*.parquet").replace("'", "''")
    try:
        con = duckdb.connect()
        try:
            got = con.execute(
                "select count(*), sum(distance), count(*) filter (where arr_delay is null) "
                f"from read_parquet('{glob}', hive_partitioning=true)").fetchone()
        finally:
            con.close()
        compare("duckdb read_parquet lake/flights", got)
    except Exception as e:  # noqa: BLE001
        problems.append(f"duckdb read_parquet lake/flights: {type(e).__name__}: {e}")

    # Parquet lake through pyarrow.dataset (hive partitioning must be readable as-is)
    try:
        rows = pds.dataset(str(lake), format="parquet", partitioning="hive").count_rows()
        if rows != expect[0]:
            problems.append(f"pyarrow.dataset lake/flights: count = {rows:,}, expected {expect[0]:,}")
    except Exception as e:  # noqa: BLE001
        problems.append(f"pyarrow.dataset lake/flights: {type(e).__name__}: {e}")

    return problems


# --------------------------------------------------------------------------------------------


def print_table(results: dict[tuple[str, str], Result], inputs: list[Path]) -> None:
    header = f"{'tool':<7} {'input':<16} {'wall s':>8} {'peak RSS MB':>12} {'caudal/tool':>12}  runs (s)"
    print(header)
    print("-" * len(header))
    for csv in inputs:
        caudal = results[("caudal", csv.name)]
        for tool in TOOLS:
            r = results[(tool, csv.name)]
            runs = " ".join(f"{x.wall:.2f}" + ("" if x.ok else "!") for x in r.runs)
            if not r.ok:
                print(f"{tool:<7} {csv.name:<16} {'FAILED':>8} {'-':>12} {'-':>12}  {runs}")
                continue
            if tool == "caudal":
                ratio = "-"
            elif caudal.ok:
                ratio = f"{caudal.wall / r.wall:.2f}"
            else:
                ratio = "n/a"
            print(f"{tool:<7} {csv.name:<16} {r.wall:>8.2f} {r.rss_mb:>12.1f} {ratio:>12}  {runs}")
    print("(wall = median of runs; peak RSS = max over runs, MB = MiB; '!' = run exited non-zero)")


def check_bars(results: dict[tuple[str, str], Result], single: str, x10: str | None) -> list[tuple[str, str, str]]:
    """Returns (status, bar, detail) per bar; status is PASS, FAIL or SKIP."""
    bars = []
    c1 = results[("caudal", single)]
    d1 = results[("duckdb", single)]

    name = f"caudal wall <= {BAR_WALL_VS_DUCKDB} x DuckDB wall ({single})"
    if c1.ok and d1.ok:
        limit = BAR_WALL_VS_DUCKDB * d1.wall
        bars.append(("PASS" if c1.wall <= limit else "FAIL", name,
                     f"{c1.wall:.2f} s vs limit {limit:.2f} s (ratio {c1.wall / d1.wall:.2f})"))
    else:
        bars.append(("FAIL", name, "caudal or duckdb run failed"))

    name = f"caudal peak RSS <= {BAR_RSS_SINGLE_MB} MB ({single})"
    if c1.ok:
        bars.append(("PASS" if c1.rss_mb <= BAR_RSS_SINGLE_MB else "FAIL", name, f"{c1.rss_mb:.1f} MB"))
    else:
        bars.append(("FAIL", name, "caudal run failed"))

    name_rss = f"caudal peak RSS <= {BAR_RSS_X10_MB} MB (x10)"
    name_scale = f"caudal x10 wall <= {BAR_X10_SCALING} x single-file wall"
    if x10 is None:
        bars.append(("SKIP", name_rss, "--skip-x10"))
        bars.append(("SKIP", name_scale, "--skip-x10"))
        return bars
    c10 = results[("caudal", x10)]
    if c10.ok:
        bars.append(("PASS" if c10.rss_mb <= BAR_RSS_X10_MB else "FAIL", name_rss, f"{c10.rss_mb:.1f} MB"))
    else:
        bars.append(("FAIL", name_rss, "caudal x10 run failed"))
    if c10.ok and c1.ok:
        limit = BAR_X10_SCALING * c1.wall
        bars.append(("PASS" if c10.wall <= limit else "FAIL", name_scale,
                     f"{c10.wall:.2f} s vs limit {limit:.2f} s ({c10.wall / c1.wall:.2f}x)"))
    else:
        bars.append(("FAIL", name_scale, "caudal run failed"))
    return bars


def main() -> int:
    args = parse_args()
    args.caudal = args.caudal.resolve()
    print_header(args)

    inputs = [args.data / "flights.csv"] + ([] if args.skip_x10 else [args.data / "flights_x10.csv"])
    missing = [p for p in [args.caudal, *inputs, *(args.peers / s for _, s in PEERS)] if not p.exists()]
    if missing:
        for p in missing:
            print(f"error: {p} not found (run bash bench/flights.sh)", file=sys.stderr)
        return 2

    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="flights-", dir=args.workdir))
    (work / "logs").mkdir()

    failed = False
    results: dict[tuple[str, str], Result] = {}
    for csv in inputs:
        warm_page_cache(csv)
        for tool in TOOLS:
            results[(tool, csv.name)] = Result(tool, csv.name)
        # Repetitions go round-robin over the tools so slow drift of the machine hits all alike.
        for rep in range(1, args.reps + 1):
            for tool in TOOLS:
                print(f"  {csv.name} run {rep}/{args.reps}: {tool:<7}", end=" ", flush=True)
                run = run_tool(tool, csv, rep, args, work)
                results[(tool, csv.name)].runs.append(run)
                print(f"{run.wall:7.2f} s {run.rss_kib * 1024 / MIB:8.1f} MB"
                      + ("" if run.ok else f"  EXIT {run.exit_code}"), flush=True)
                if not run.ok:
                    failed = True
                    print(f"    {tool} failed; last lines of {run.log}:\n{tail(run.log)}", flush=True)

    # Every child's ru_maxrss is at least this (see module docstring).
    floor_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB
    print()
    print_table(results, inputs)
    print(f"(harness peak RSS {floor_mb:.1f} MB: no child can report less)")

    print("\nbars:")
    bars = check_bars(results, inputs[0].name, None if args.skip_x10 else inputs[1].name)
    for status, name, detail in bars:
        print(f"  {status}  {name}: {detail}")
        failed |= status == "FAIL"

    print("\nverification of caudal's output (warehouse.db, lake/flights):")
    for csv, scale in zip(inputs, (1, 10)):
        for i, run in enumerate(results[("caudal", csv.name)].runs, 1):
            where = f"{csv.name} run {i}"
            if not run.ok:
                print(f"  FAIL  {where}: caudal exited {run.exit_code}, nothing to verify")
                failed = True
                continue
            problems = verify_project(run.outdir, scale)
            if problems:
                failed = True
                print(f"  FAIL  {where}: MISMATCH in {run.outdir}")
                for p in problems:
                    print(f"          {p}")
            else:
                print(f"  PASS  {where}: sqlite, duckdb and pyarrow all read "
                      f"{SINGLE_ROWS * scale:,} rows, sum(distance) {SINGLE_DISTANCE_SUM * scale:,}, "
                      f"{SINGLE_NULL_ARR_DELAY * scale:,} null arr_delay")

    if args.keep or failed:
        print(f"\nrun directories and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)

    print("\nRESULT:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
