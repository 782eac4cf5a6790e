"""Benchmarks of `caudal run` (issue: watched folders loaded within milliseconds).

  latency  1,000-row CSV files renamed into the watched folder at 10 files/s for 20 s; time from
           the rename to the delivery being finished in the ledger (rows committed in SQLite
           and the lake). Peer: a 5-second polling loop loading with Python's csv + sqlite3, the
           loop people write today, measured the same way in the same run.
  burst    1,000 files of 1,000 rows dropped at once: files loaded per second.
  idle     caudal run watching an empty folder for 60 s: CPU used, as % of one core.

Usage: python bench/watch.py --caudal PATH [--quick]   (or: bash bench/watch.sh)
"""
import argparse
import csv
import io
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

CONFIG = """
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.events]
source = { kind = "folder", path = "incoming", format = "csv", settle = "1s" }
contract = "contract.toml"
load = [{ into = "warehouse", table = "events" }]
"""
CONTRACT = """
[columns]
id = { type = "int64", required = true }
name = { type = "string" }
amount = { type = "float64" }
"""


def csv_text(file_no: int, rows: int) -> str:
    out = io.StringIO()
    out.write("id,name,amount\n")
    for r in range(rows):
        out.write(f"{file_no * rows + r},name{r % 97},{r * 0.5}\n")
    return out.getvalue()


def project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "caudal.toml").write_text(CONFIG)
    (root / "contract.toml").write_text(CONTRACT)
    (root / "incoming").mkdir()
    return root


def drop(folder: Path, name: str, text: str) -> float:
    tmp = folder / f".{name}.tmp"
    tmp.write_text(text)
    t = time.time()
    os.rename(tmp, folder / name)
    return t


def drop_at_ten_per_second(folder: Path, seconds: int) -> dict[str, float]:
    """Renames a 1,000-row file into `folder` every 100 ms; returns each name's rename time."""
    dropped = {}
    for i in range(seconds * 10):
        name = f"f{i:05}.csv"
        dropped[name] = drop(folder, name, csv_text(i, 1000))
        time.sleep(max(0.0, 0.1 - (time.time() - dropped[name]) % 0.1))
    return dropped


def start_caudal(binary: str, root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([binary, "-C", str(root), "run"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "watching" not in line:
        raise SystemExit(f"caudal run did not start: {line}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(2)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def finished_times(root: Path) -> dict[str, float]:
    db = root / ".caudal" / "ledger.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT source, finished_at FROM deliveries WHERE status = 'loaded'").fetchall()
    except sqlite3.OperationalError:
        rows = []
    con.close()
    return {Path(s).name: datetime.fromisoformat(f.replace("Z", "+00:00")).timestamp() for s, f in rows if f}


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def latency_caudal(binary: str, work: Path, seconds: int) -> list[float]:
    root = project(work / "latency")
    proc = start_caudal(binary, root)
    dropped = drop_at_ten_per_second(root / "incoming", seconds)
    deadline = time.time() + 60
    while time.time() < deadline and len(finished_times(root)) < len(dropped):
        time.sleep(0.2)
    stop(proc)
    done = finished_times(root)
    return [(done[n] - t) * 1000 for n, t in dropped.items() if n in done]


POLLER = r'''
import csv, os, sqlite3, sys, time
folder, db, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
con = sqlite3.connect(db)
con.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER, name TEXT, amount REAL)")
con.execute("CREATE TABLE IF NOT EXISTS done (name TEXT PRIMARY KEY, at REAL)")
con.commit()
seen = {r[0] for r in con.execute("SELECT name FROM done")}
while not os.path.exists(os.path.join(folder, "STOP")):
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not name.endswith(".csv") or name in seen:
            continue
        with open(os.path.join(folder, name), newline="") as f:
            rows = [(int(r["id"]), r["name"], float(r["amount"])) for r in csv.DictReader(f)]
        con.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
        con.execute("INSERT INTO done VALUES (?, ?)", (name, time.time()))
        con.commit()
        seen.add(name)
    time.sleep(interval)
'''


def latency_poller(work: Path, seconds: int) -> list[float]:
    root = work / "poller"
    (root / "incoming").mkdir(parents=True)
    db = root / "w.db"
    proc = subprocess.Popen([sys.executable, "-c", POLLER, str(root / "incoming"), str(db), "5"])
    dropped = drop_at_ten_per_second(root / "incoming", seconds)
    deadline = time.time() + 30
    done = {}
    while time.time() < deadline and len(done) < len(dropped):
        time.sleep(0.5)
        try:
            con = sqlite3.connect(db, timeout=10)
            done = dict(con.execute("SELECT name, at FROM done").fetchall())
            con.close()
        except sqlite3.OperationalError:
            pass
    (root / "incoming" / "STOP").write_text("")
    proc.wait(timeout=30)
    return [(done[n] - t) * 1000 for n, t in dropped.items() if n in done]


def burst(binary: str, work: Path, files: int) -> tuple[float, int]:
    root = project(work / "burst")
    staging = work / "burst-staging"
    staging.mkdir()
    for i in range(files):
        (staging / f"b{i:05}.csv").write_text(csv_text(i, 1000))
    proc = start_caudal(binary, root)
    t0 = time.time()
    for p in sorted(staging.iterdir()):
        os.rename(p, root / "incoming" / p.name)
    deadline = time.time() + 300
    while time.time() < deadline and len(finished_times(root)) < files:
        time.sleep(0.1)
    done = finished_times(root)
    stop(proc)
    elapsed = max(done.values()) - t0 if done else float("inf")
    return len(done) / elapsed, len(done)


def idle(binary: str, work: Path, seconds: int) -> float:
    root = project(work / "idle")
    proc = start_caudal(binary, root)
    time.sleep(2)
    def cpu() -> float:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    c0, t0 = cpu(), time.time()
    time.sleep(seconds)
    c1, t1 = cpu(), time.time()
    stop(proc)
    return 100 * (c1 - c0) / (t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--caudal", required=True)
    ap.add_argument("--quick", action="store_true", help="shorter runs (5 s latency, 200 files, 10 s idle)")
    args = ap.parse_args()
    secs, files, idle_secs = (5, 200, 10) if args.quick else (20, 1000, 60)
    print("# caudal watch benchmarks\nreproduce: bash bench/watch.sh" + (" --quick" if args.quick else ""))
    print(f"machine: nproc {os.cpu_count()}")
    work = Path(tempfile.mkdtemp(prefix="caudal-watch-", dir=os.environ.get("TMPDIR")))
    failures = []
    try:
        lat = latency_caudal(args.caudal, work, secs)
        poll = latency_poller(work, secs)
        n = secs * 10
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        pp50 = percentile(poll, 50) if poll else float("nan")
        pmean = statistics.mean(poll) if poll else float("nan")
        print(f"\nlatency ({len(lat)}/{n} files loaded): caudal p50 {p50:.0f} ms, p99 {p99:.0f} ms, mean {statistics.mean(lat):.0f} ms")
        print(f"                          5 s polling loop ({len(poll)}/{n}): p50 {pp50:.0f} ms, mean {pmean:.0f} ms; caudal p50 / poller p50 = {p50 / pp50:.3f}")
        for ok, what in [(len(lat) == n, "every file loaded"), (p50 <= 50, "p50 <= 50 ms"), (p99 <= 250, "p99 <= 250 ms")]:
            print(f"  {'PASS' if ok else 'FAIL'}  latency: {what}")
            if not ok:
                failures.append(what)
        rate, loaded = burst(args.caudal, work, files)
        ok = rate >= 200 and loaded == files
        print(f"\nburst: {loaded}/{files} files loaded at {rate:.0f} files/s")
        print(f"  {'PASS' if ok else 'FAIL'}  burst: >= 200 files/s")
        if not ok:
            failures.append("burst")
        cpu = idle(args.caudal, work, idle_secs)
        ok = cpu < 1.0
        print(f"\nidle: {cpu:.2f}% of one core over {idle_secs} s")
        print(f"  {'PASS' if ok else 'FAIL'}  idle: < 1% of a core")
        if not ok:
            failures.append("idle")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nRESULT:", "PASS" if not failures else "FAIL (" + ", ".join(failures) + ")")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
