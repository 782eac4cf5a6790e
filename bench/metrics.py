#!/usr/bin/env python3
"""Metrics benchmark: a caudal metrics job against the same SQL run by DuckDB.

Run through `bash bench/metrics.sh`, which prepares the data and venv, builds caudal in release
mode (unless CAUDAL_BIN names a binary) and calls this script with the bench venv's Python:

    python bench/metrics.py --caudal PATH [--data DIR] [--reps N] [--quick] [--rebuild-lake]
                            [--keep] [--allow-busy] [--project DIR] [--workdir DIR]

The lake is flights_x10.csv (ten copies of nycflights13 flights, 3,367,760 rows) loaded by
`caudal load` into a Parquet lake partitioned by dep_date (365 folders). It is built once in
`$CAUDAL_BENCH_HOME/metrics-project` and reused by later runs when it still holds 3,367,760 rows
and was built from the same pipeline definition.

The workload is one metrics job of 8 grouped metrics (METRICS below), period = "none", so every
metric reads the whole lake:

  caudal:  `caudal -C <project> jobs run flight_metrics --json`: DataFusion over the lake, rows
           stored into warehouse.db table calculated_metrics.
  DuckDB:  `python metrics.py --duckdb-peer <lake> <out.json>`: one process that imports duckdb,
           connects, creates the view `flights` over
           read_parquet('<lake>/flights/**/*.parquet', hive_partitioning = true) and runs the
           same 8 statements, fetching every result.

Both are timed the same way: as whole subprocesses, spawn to exit (caudal's process start and
config parsing; Python start-up, `import duckdb` and connect for DuckDB). The DuckDB process also
reports its in-process time (import + connect + queries), printed for reference. Repetitions go
round-robin (caudal, then DuckDB) and the lake is read once beforehand so nobody pays for a cold
page cache. The bar compares medians:

    caudal wall <= 1.5 x DuckDB wall

The machine is watched during each run: /proc/stat's busy time minus the measured process's
own CPU time (os.wait4) is what other processes used. If that exceeds 10% of one core during any
run, the bar is not judged (SKEWED) unless --allow-busy is given.

Every caudal run is verified against DuckDB's results: for each metric the same set of
dimension values, and values equal within 1e-6 relative. Exit codes: 0 PASS; 1 a run failed,
the bar failed or a result mismatched; 3 results verified but timings skewed (rerun).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # for --duckdb-peer: its in-process time starts here

import argparse
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from flights import CONTRACT_TOML  # the same contract
from machine import cpu_model, git_describe, mem_total, repo_root, tail, versions

# The Python packages whose versions the report names.
PACKAGES = ("duckdb", "pyarrow")

LAKE_ROWS = 3_367_760  # flights_x10.csv
BAR_WALL_VS_DUCKDB = 1.5  # caudal wall <= 1.5 x DuckDB wall
REL_TOLERANCE = 1e-6
JOB = "flight_metrics"

# The 8 metrics: (name, type, unit, dimensions, SQL). The SQL is what both engines run, word for
# word. It avoids constructs whose meaning differs between DataFusion and DuckDB (integer `/`,
# float dimensions, ties at a LIMIT boundary).
METRICS: list[tuple[str, str, str, list[str], str]] = [
    ("arr_delay_by_carrier", "average", "min", ["carrier"],
     "SELECT carrier, avg(arr_delay) AS value FROM flights GROUP BY carrier"),
    ("flights_by_origin_month", "count", "flights", ["origin", "month"],
     "SELECT origin, month, count(*) AS value FROM flights GROUP BY origin, month"),
    ("delayed_share_by_month", "ratio", "share", ["month"],
     "SELECT month, avg(CASE WHEN arr_delay > 15 THEN 1.0 ELSE 0.0 END) AS value "
     "FROM flights WHERE arr_delay IS NOT NULL GROUP BY month"),
    ("distance_by_carrier", "average", "miles", ["carrier"],
     "SELECT carrier, avg(distance) AS value FROM flights GROUP BY carrier"),
    ("median_dep_delay_by_hour", "median", "min", ["hour"],
     "SELECT hour, median(CAST(dep_delay AS DOUBLE)) AS value "
     "FROM flights WHERE dep_delay IS NOT NULL GROUP BY hour"),
    ("top_destinations", "count", "flights", ["dest"],
     "SELECT dest, count(*) AS value FROM flights GROUP BY dest ORDER BY value DESC, dest LIMIT 20"),
    ("air_time_by_route", "average", "min", ["origin", "dest"],
     "SELECT origin, dest, avg(air_time) AS value FROM flights GROUP BY origin, dest"),
    ("cancelled_by_day", "count", "flights", ["dep_date"],
     "SELECT dep_date, sum(CASE WHEN dep_time IS NULL THEN 1 ELSE 0 END) AS value "
     "FROM flights GROUP BY dep_date"),
]

# The lake's project: the flights pipeline of flights.py, loading only into the lake
# (partitioned by dep_date); `warehouse` only receives calculated_metrics.
PROJECT_TOML = '''\
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
SELECT *, make_date(year, month, day) AS dep_date
FROM input
"""
load = [
  { into = "lake", table = "flights", partition_by = "dep_date" },
]
'''



def jobs_toml() -> str:
    out = [f'\n[jobs.{JOB}]', 'schedule = "0 2 * * *"', 'kind = "metrics"', 'period = "none"',
           'into = "warehouse"']
    for name, kind, unit, dims, sql in METRICS:
        out += ["", f"[[jobs.{JOB}.metrics]]", f'name = "{name}"', f'type = "{kind}"',
                f'unit = "{unit}"', 'source = "lake"', f"sql = '''{sql}'''",
                "dimensions = [" + ", ".join(f'"{d}"' for d in dims) + "]"]
    return "\n".join(out) + "\n"


def lake_spec() -> str:
    """Fingerprint of what built the lake; a lake built from anything else is rebuilt."""
    return hashlib.sha256((PROJECT_TOML + CONTRACT_TOML + str(LAKE_ROWS)).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# The DuckDB side (runs in its own process: `metrics.py --duckdb-peer LAKE OUT.json`)


def duckdb_peer(lake: Path, out: Path, t_start: float) -> int:
    import duckdb  # noqa: PLC0415 (timed: part of DuckDB's cost)

    con = duckdb.connect()
    glob = str(lake / "flights" / "**" / "*.parquet").replace("'", "''")
    con.execute("CREATE VIEW flights AS SELECT * FROM "
                f"read_parquet('{glob}', hive_partitioning = true)")
    results = {}
    ms = {}
    for name, _kind, _unit, _dims, sql in METRICS:
        t = time.perf_counter()
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
        ms[name] = (time.perf_counter() - t) * 1000
        results[name] = {"columns": columns, "rows": rows}
    in_process = time.perf_counter() - t_start
    version = duckdb.__version__
    con.close()
    # Written after the clock stopped; tiny (about 700 rows in all).
    out.write_text(json.dumps({"in_process_s": in_process, "duckdb": version, "ms": ms,
                               "results": results}, default=str))
    return 0


def count_lake_rows(python: str, lake: Path) -> int | None:
    """Rows in lake/flights as DuckDB reads them (in a subprocess, to keep the harness small)."""
    code = ("import sys, duckdb; g = sys.argv[1].replace(\"'\", \"''\"); "
            "print(duckdb.connect().execute("
            "f\"select count(*) from read_parquet('{g}', hive_partitioning=true)\").fetchone()[0])")
    glob = str(lake / "flights" / "**" / "*.parquet")
    p = subprocess.run([python, "-c", code, glob], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"(counting the lake's rows with DuckDB failed:\n{p.stderr.strip()})")
        return None
    try:
        return int(p.stdout.strip())
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    exit_code: int
    stdout: Path
    stderr: Path
    cpu: float = 0.0  # user + system seconds of the measured process
    other_cpu: float | None = None  # CPU seconds used by everything else during the run

    @property
    def busy_machine(self) -> bool:
        """Other processes used more than 10% of one core while this ran."""
        return self.other_cpu is not None and self.other_cpu > 0.10 * self.wall

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Result:
    tool: str
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)




def parse_args() -> argparse.Namespace:
    bench_home = Path(os.environ.get("CAUDAL_BENCH_HOME", Path.home() / ".cache/caudal-bench"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--caudal", required=True, type=Path, help="path to the caudal release binary")
    ap.add_argument("--data", type=Path, default=bench_home / "data",
                    help="folder with flights_x10.csv (from get-data.sh)")
    ap.add_argument("--project", type=Path, default=bench_home / "metrics-project",
                    help="caudal project holding the lake (built here once, then reused)")
    ap.add_argument("--workdir", type=Path, default=bench_home / "runs",
                    help="where logs and DuckDB outputs of a run go (on disk, not tmpfs)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per tool (default 3)")
    ap.add_argument("--quick", action="store_true", help="one repetition per tool")
    ap.add_argument("--rebuild-lake", action="store_true", help="rebuild the lake even if reusable")
    ap.add_argument("--keep", action="store_true", help="keep logs and DuckDB outputs")
    ap.add_argument("--allow-busy", action="store_true",
                    help="judge the bar even if other processes used the CPU during the runs")
    args = ap.parse_args()
    if args.quick:
        args.reps = 1
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    return args










def caudal_version(caudal: Path) -> str:
    try:
        return subprocess.run([str(caudal), "--version"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "caudal (version unknown)"


def reproduce(args: argparse.Namespace) -> str:
    flags = []
    if args.quick:
        flags.append("--quick")
    elif args.reps != 3:
        flags.append(f"--reps {args.reps}")
    if args.allow_busy:
        flags.append("--allow-busy")
    return f"reproduce: bash bench/metrics.sh {' '.join(flags)}".rstrip()


def print_header(args: argparse.Namespace) -> None:
    print("# caudal metrics benchmark: 8 grouped metrics over the flights_x10 lake, caudal vs DuckDB")
    print(reproduce(args))
    print(f"machine:   nproc {len(os.sched_getaffinity(0))}, CPU {cpu_model()}, "
          f"RAM {mem_total()}, {platform.system()} {platform.release()}")
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(args.caudal.stat().st_mtime))
    print(f"software:  {caudal_version(args.caudal)} ({args.caudal}, built {built}), repo at "
          f"{git_describe(repo_root())}, {versions(PACKAGES)}")
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "unknown"
    print(f"load avg:  {load} at start (other work on the machine skews both sides; rerun if high)")
    print(f"data:      {args.data / 'flights_x10.csv'} -> lake {args.project / 'lake'}")
    print(f"timing:    whole subprocesses, spawn to exit, both sides (caudal CLI start; Python "
          f"start-up + import duckdb + connect); {args.reps} repetition(s), round-robin, median")
    print(flush=True)




def busy_jiffies() -> int | None:
    """CPU time spent by everything on the machine so far (all cores), in clock ticks."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(f[:3]) + sum(f[5:8])  # user nice system (idle iowait) irq softirq steal


def measure(argv: list[str], stdout: Path, stderr: Path) -> Run:
    """Runs argv to completion: wall time, and the CPU time the rest of the machine used meanwhile."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        b0 = busy_jiffies()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child (its threads included)
        wall = time.perf_counter() - t0
        b1 = busy_jiffies()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    other = None
    if b0 is not None and b1 is not None:
        other = max(0.0, (b1 - b0) / os.sysconf("SC_CLK_TCK") - cpu)
    return Run(wall, proc.returncode, stdout, stderr, cpu, other)


def run_line(run: Run) -> str:
    line = f"{run.wall:6.2f} s wall, {run.cpu:6.2f} s CPU"
    if run.other_cpu is not None:
        line += f", other processes {run.other_cpu:5.2f} s CPU"
        if run.busy_machine:
            line += "  (BUSY MACHINE: this run is skewed)"
    if not run.ok:
        line += f"  EXIT {run.exit_code}"
    return line


def warm_page_cache(root: Path) -> int:
    """Reads every file under root once; returns the bytes read."""
    buf = bytearray(1 << 20)
    total = 0
    for path in sorted(root.rglob("*.parquet")):
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total


def prepare_project(args: argparse.Namespace, work: Path) -> bool:
    """Builds (or reuses) the lake and writes the job into caudal.toml; False on failure."""
    project = args.project
    spec_file = project / ".bench-lake-spec"
    reuse = False
    if not args.rebuild_lake and spec_file.exists() and spec_file.read_text().strip() == lake_spec():
        rows = count_lake_rows(sys.executable, project / "lake")
        reuse = rows == LAKE_ROWS
        if not reuse:
            print(f"lake: {project / 'lake'} holds {rows} rows, not {LAKE_ROWS:,}: rebuilding")
    if reuse:
        print(f"lake: reusing {project / 'lake' / 'flights'} ({LAKE_ROWS:,} rows)")
    else:
        shutil.rmtree(project, ignore_errors=True)
        (project / "contracts").mkdir(parents=True)
        (project / "incoming").mkdir()
        (project / "caudal.toml").write_text(PROJECT_TOML)
        (project / "contracts/flights.toml").write_text(CONTRACT_TOML)
        csv = args.data / "flights_x10.csv"
        print(f"lake: building with `caudal -C {project} load {csv} -p flights` ...", flush=True)
        run = measure([str(args.caudal), "-C", str(project), "load", str(csv), "-p", "flights"],
                      work / "logs/load.out", work / "logs/load.err")
        if not run.ok:
            print(f"lake: caudal load exited {run.exit_code}\n{tail(run.stdout)}\n{tail(run.stderr)}")
            return False
        rows = count_lake_rows(sys.executable, project / "lake")
        if rows != LAKE_ROWS:
            print(f"lake: DuckDB reads {rows} rows from the new lake, expected {LAKE_ROWS:,}")
            return False
        spec_file.write_text(lake_spec() + "\n")
        print(f"lake: built in {run.wall:.1f} s, {rows:,} rows")
    # The job is (re)written every time, so changes to METRICS need no lake rebuild. A fresh
    # warehouse.db means only this run's values can be found there.
    (project / "caudal.toml").write_text(PROJECT_TOML + jobs_toml())
    for name in ("warehouse.db", "warehouse.db-wal", "warehouse.db-shm"):
        (project / name).unlink(missing_ok=True)
    flights = project / "lake" / "flights"
    files = sum(1 for _ in flights.rglob("*.parquet"))
    folders = sum(1 for _ in flights.iterdir())
    size = warm_page_cache(flights)
    print(f"lake: {folders} partition folders, {files} parquet files, {size / 1e6:.0f} MB "
          "(read once to warm the page cache)\n", flush=True)
    return True


# --------------------------------------------------------------------------------------------
# Verification


def dims_key(pairs: dict) -> tuple:
    return tuple(sorted((k, None if v is None else str(v)) for k, v in pairs.items()))


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    return abs(a - b) <= REL_TOLERANCE * max(abs(a), abs(b))


def expected_from_duckdb(duck: dict) -> dict[str, dict[tuple, list]]:
    out: dict[str, dict[tuple, list]] = {}
    for name, _kind, _unit, dims, _sql in METRICS:
        res = duck["results"][name]
        at = {c: i for i, c in enumerate(res["columns"])}
        rows: dict[tuple, list] = {}
        for row in res["rows"]:
            key = dims_key({d: row[at[d]] for d in dims})
            value = row[at["value"]]
            rows.setdefault(key, []).append(None if value is None else float(value))
        out[name] = rows
    return out


def caudal_rows(project: Path, run_id: int) -> dict[str, dict[tuple, list]]:
    con = sqlite3.connect(f"file:{project / 'warehouse.db'}?mode=ro", uri=True)
    try:
        got = con.execute("SELECT name, value, dimensions FROM calculated_metrics WHERE run_id = ?",
                          (run_id,)).fetchall()
    finally:
        con.close()
    out: dict[str, dict[tuple, list]] = {}
    for name, value, dims in got:
        out.setdefault(name, {}).setdefault(dims_key(json.loads(dims)), []).append(value)
    return out


def compare(expected: dict, got: dict) -> list[str]:
    problems = []
    for name, *_ in METRICS:
        exp, act = expected[name], got.get(name, {})
        n_exp = sum(len(v) for v in exp.values())
        n_act = sum(len(v) for v in act.values())
        if n_exp != n_act:
            problems.append(f"{name}: {n_act} rows in calculated_metrics, DuckDB returns {n_exp}")
        shown = 0
        for key in sorted(set(exp) | set(act), key=repr):
            e, a = sorted(exp.get(key, []), key=repr), sorted(act.get(key, []), key=repr)
            if len(e) == len(a) and all(close(x, y) for x, y in zip(e, a)):
                continue
            shown += 1
            if shown <= 5:
                dims = ", ".join(f"{k}={v}" for k, v in key) or "(no dimensions)"
                problems.append(f"{name} [{dims}]: caudal {a or 'missing'}, DuckDB {e or 'missing'}")
        if shown > 5:
            problems.append(f"{name}: ... {shown - 5} more mismatching groups")
    return problems


# --------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--duckdb-peer":
        return duckdb_peer(Path(sys.argv[2]), Path(sys.argv[3]), T_START)

    args = parse_args()
    args.caudal = args.caudal.resolve()
    args.project = args.project.resolve()
    print_header(args)
    csv = args.data / "flights_x10.csv"
    for p in (args.caudal, csv):
        if not p.exists():
            print(f"error: {p} not found (run bash bench/metrics.sh)", file=sys.stderr)
            return 2

    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="metrics-", dir=args.workdir))
    (work / "logs").mkdir()
    if not prepare_project(args, work):
        print(f"\nlogs kept in {work}\n\nRESULT: FAIL")
        return 1

    lake = args.project / "lake"
    caudal = Result("caudal")
    duck = Result("duckdb")
    caudal_json: list[dict | None] = []
    caudal_values: list[dict | None] = []  # calculated_metrics rows of each run, read after it
    duck_json: list[dict | None] = []
    failed = False
    for rep in range(1, args.reps + 1):
        print(f"  run {rep}/{args.reps}: caudal", end=" ", flush=True)
        run = measure([str(args.caudal), "-C", str(args.project), "jobs", "run", JOB, "--json"],
                      work / f"logs/caudal-{rep}.out", work / f"logs/caudal-{rep}.err")
        caudal.runs.append(run)
        try:
            caudal_json.append(json.loads(run.stdout.read_text())[0])
        except (OSError, ValueError, IndexError, KeyError):
            caudal_json.append(None)
        # The next run replaces these rows, so they are read now (outside the timing).
        try:
            caudal_values.append(caudal_rows(args.project, caudal_json[-1]["id"])
                                 if caudal_json[-1] else None)
        except (sqlite3.Error, OSError, ValueError) as e:
            print(f"(reading calculated_metrics failed: {e})", end=" ")
            caudal_values.append(None)
        print(run_line(run), flush=True)
        if not run.ok:
            failed = True
            print(f"    caudal failed:\n{tail(run.stdout, 40)}\n{tail(run.stderr)}", flush=True)

        print(f"  run {rep}/{args.reps}: duckdb", end=" ", flush=True)
        out = work / f"duckdb-{rep}.json"
        run = measure([sys.executable, str(Path(__file__).resolve()), "--duckdb-peer", str(lake),
                       str(out)], work / f"logs/duckdb-{rep}.out", work / f"logs/duckdb-{rep}.err")
        duck.runs.append(run)
        try:
            duck_json.append(json.loads(out.read_text()))
        except (OSError, ValueError):
            duck_json.append(None)
        print(run_line(run), flush=True)
        if not run.ok:
            failed = True
            print(f"    duckdb failed:\n{tail(run.stdout)}\n{tail(run.stderr)}", flush=True)

    # Per-metric times: median over the repetitions, as each side reports them.
    print(f"\n{'metric':<26} {'caudal ms':>10} {'duckdb ms':>10}  rows")
    print("-" * 56)
    for name, *_ in METRICS:
        c_ms = [m["duration_ms"] for j in caudal_json if j for m in j.get("metrics", [])
                if m.get("metric") == name]
        d_ms = [j["ms"][name] for j in duck_json if j and name in j.get("ms", {})]
        rows = next((m.get("rows") for j in caudal_json if j for m in j.get("metrics", [])
                     if m.get("metric") == name), "-")
        c = f"{statistics.median(c_ms):.0f}" if c_ms else "-"
        d = f"{statistics.median(d_ms):.0f}" if d_ms else "-"
        print(f"{name:<26} {c:>10} {d:>10}  {rows}")
    print("(caudal: duration_ms per metric from `jobs run --json`, includes storing into SQLite; "
          "duckdb: execute + fetchall)")

    print(f"\n{'tool':<8} {'wall s':>8}  runs (s)")
    print("-" * 40)
    for r in (caudal, duck):
        runs = " ".join(f"{x.wall:.2f}" + ("" if x.ok else "!") for x in r.runs)
        print(f"{r.tool:<8} {r.wall if r.ok else float('nan'):>8.2f}  {runs}")
    job_ms = [j["duration_ms"] for j in caudal_json if j and j.get("duration_ms") is not None]
    in_proc = [j["in_process_s"] for j in duck_json if j]
    if job_ms:
        print(f"  caudal job run alone (ledger duration_ms, median): {statistics.median(job_ms) / 1000:.2f} s")
    if in_proc:
        print(f"  duckdb in-process (import + connect + 8 queries, median): "
              f"{statistics.median(in_proc):.2f} s")
    print("(wall = median of runs, whole process spawn to exit; '!' = run exited non-zero)")
    busy = [f"{r.tool} run {i}" for r in (caudal, duck) for i, x in enumerate(r.runs, 1)
            if x.busy_machine]
    if busy:
        print(f"WARNING: other processes used over 10% of a core during {', '.join(busy)}; "
              "the times are skewed, rerun on a quiet machine")

    print("\nbar:")
    name = f"caudal wall <= {BAR_WALL_VS_DUCKDB} x DuckDB wall (8 metrics, flights_x10 lake)"
    if caudal.ok and duck.ok:
        ratio = caudal.wall / duck.wall
        status = "PASS" if ratio <= BAR_WALL_VS_DUCKDB else "FAIL"
        if busy and not args.allow_busy:
            status = "SKEWED"  # not judged: the machine was busy (see WARNING above)
        print(f"  caudal {caudal.wall:.2f} s, DuckDB {duck.wall:.2f} s, ratio caudal/DuckDB "
              f"{ratio:.2f}")
        print(f"  {status}  {name}: limit {BAR_WALL_VS_DUCKDB * duck.wall:.2f} s"
              + (" (not judged: busy machine; rerun, or pass --allow-busy)"
                 if status == "SKEWED" else ""))
        if in_proc:
            print(f"  (for reference: caudal wall / DuckDB in-process time = "
                  f"{caudal.wall / statistics.median(in_proc):.2f})")
    else:
        status = "FAIL"
        print(f"  FAIL  {name}: caudal or DuckDB run failed")
    failed |= status == "FAIL"

    print("\nverification (caudal's calculated_metrics vs DuckDB's results, rel. tolerance "
          f"{REL_TOLERANCE:g}):")
    reference = next((j for j in duck_json if j), None)
    if reference is None:
        print("  FAIL  no DuckDB results to compare with")
        failed = True
    else:
        expected = expected_from_duckdb(reference)
        total = sum(sum(len(v) for v in rows.values()) for rows in expected.values())
        for i, (run, j, values) in enumerate(zip(caudal.runs, caudal_json, caudal_values), 1):
            if j is None:
                print(f"  FAIL  caudal run {i}: no JSON run record on stdout (exit {run.exit_code})")
                failed = True
                continue
            problems = [f"{m.get('metric')}: {m.get('status')}: {m.get('error')}"
                        for m in j.get("metrics", []) if m.get("status") != "succeeded"]
            if len(j.get("metrics", [])) != len(METRICS):
                problems.append(f"{len(j.get('metrics', []))} metric results, expected {len(METRICS)}")
            if values is None:
                problems.append("could not read calculated_metrics")
            else:
                problems += compare(expected, values)
            if problems:
                failed = True
                print(f"  FAIL  caudal run {i} (job run #{j.get('id')}): MISMATCH")
                for p in problems:
                    print(f"          {p}")
            else:
                print(f"  PASS  caudal run {i} (job run #{j['id']}): all {len(METRICS)} metrics, "
                      f"{total} rows, equal to DuckDB's")
        # DuckDB's own repetitions must agree with each other.
        for i, j in enumerate(duck_json[1:], 2):
            if j is not None and compare(expected, expected_from_duckdb(j)):
                print(f"  FAIL  DuckDB run {i} differs from DuckDB run 1")
                failed = True

    if args.keep or failed:
        print(f"\nlogs and DuckDB outputs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + reproduce(args))
    if failed:
        print("\nRESULT: FAIL")
        return 1
    if status == "SKEWED":
        print("\nRESULT: INCONCLUSIVE (results verified, but the timings are skewed by other work "
              "on the machine; exit 3: rerun)")
        return 3
    print("\nRESULT: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
