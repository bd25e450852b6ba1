"""`make bench`: drive the real server (granian, PostgreSQL, Redis) with wrk on loopback.

Starts a private PostgreSQL and Redis (as the test suite does), migrates, seeds users,
clients and a pool of refresh tokens (bench/seed.py), serves the app with `authserver
serve` exactly as `make run` does, then runs each workload R times for D seconds with 8
connections and prints one table of medians: requests/s, p50/p99, errors, CPU ms per
request (server processes only) and each rate's ratio to the trivial endpoint measured
in the same run. Then a memory run: 100,000 token requests, worker RSS before and after.
Results go to bench/results/ as Markdown and JSON. bench/README.md reads them.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import free_port, postgres_server, redis_server  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PASSWORD = "bench password 1"
PHONE = "+33612975634"
# Goals (issue #17), as ratios to figures measured in the same sitting: a peer's
# (../shared/peers-bench, `--peers`), argon2id alone, or this run's trivial endpoint.
# workload: (peer suite, peer label, goal ratio, what the ratio is to)
GOALS = {
    "trivial": ("framework", "hello-sync-w2", None, "Flask hello, gunicorn 2 workers"),
    "jwks": (None, None, 0.95, "trivial"),
    "client_credentials": ("oidc-provider", "cc-jwt", 0.8, "oidc-provider cc-jwt"),
    "introspection": ("oidc-provider", "introspect", 0.6, "oidc-provider introspect"),
    "verify": ("simplejwt", "verify", 2.0, "SimpleJWT verify (RS256)"),
    "refresh": ("simplejwt", "refresh-rotate", 5.0, "SimpleJWT refresh-rotate"),
    "password": (None, None, 0.9, "argon2id alone, same parameters"),
}
# How the server scales from one worker to two (one per core): these workloads again.
SCALING_WORKLOADS = ("client_credentials", "verify", "refresh")
MEMORY_RUN_REQUESTS = 100_000
LUA = ROOT / "bench" / "wrk.lua"
LOGIN = f"grant_type=password&username=%2B{PHONE[1:]}&password={PASSWORD.replace(' ', '+')}"


def server_pids(master_pid: int) -> list[int]:
    """The server's master and every process below it."""
    pids, queue = [], [master_pid]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                queue += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return pids


def cpu_seconds(master_pid: int) -> float:
    """utime+stime of the server's processes, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in server_pids(master_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / tick


def process_listening_on(name: str, port: int) -> int | None:
    """The pid of the ``name`` server started with ``port`` on its command line (the
    PostgreSQL postmaster, redis-server): whose CPU, with its children's, is counted."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if name.encode() in argv[0] and str(port).encode() in argv[1:]:
            return int(proc.name)
    return None


def worker_rss_kib(master_pid: int) -> dict[int, int]:
    """Resident memory of each worker process (the master excluded)."""
    rss = {}
    for pid in server_pids(master_pid)[1:]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[pid] = int(line.split()[1])
        except OSError:
            continue
    return rss


def _argon2_worker(seconds: float, queue) -> None:
    sys.path.insert(0, str(ROOT))
    from authserver.accounts.passwords import Passwords
    from authserver.config import Settings

    # The server's own hasher, with the parameters the server would take.
    settings = Settings.from_env({"AUTHSERVER_ENV": "testing"})
    passwords = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )
    stored = passwords.hash(PASSWORD)
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        passwords.verify(stored, PASSWORD)
        count += 1
    queue.put(count)


def argon2_rate(processes: int, seconds: float = 5.0) -> float:
    """Password checks per second the machine allows at the configured argon2id
    parameters, one process per server worker: the ceiling of the password workload."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_argon2_worker, args=(seconds, queue)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    counts = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def seed(env: dict[str, str], pool_size: int, workdir: Path) -> dict:
    out = subprocess.run(
        [
            str(BIN / "python"),
            str(ROOT / "bench" / "seed.py"),
            str(pool_size),
            str(workdir / "tokens.txt"),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def basic(pair: list[str]) -> str:
    return "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()


def http_json(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, response.read()


def run_wrk(url: str, path: str, duration: int, env_extra: dict, workdir: Path) -> dict:
    summary = workdir / "summary.json"
    env = {**os.environ, "WRK_SUMMARY": str(summary), "WRK_THREADS": "2", **env_extra}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{duration}s", "--timeout", "10s", "-s", str(LUA), url + path],
        env=env,
        check=True,
        capture_output=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(summary.read_text())
    # wrk's own CPU, to show the load generator is not what limits the rate.
    result["wrk_cpu_s"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per workload (median)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--only", nargs="*", help="workloads to run")
    parser.add_argument("--no-memory", action="store_true", help="skip the 100,000-request run")
    parser.add_argument(
        "--no-scaling", action="store_true", help="skip the one-worker runs (1 vs 2 workers)"
    )
    parser.add_argument(
        "--peers",
        help="results/raw of a peers-bench run of the same sitting: ratios to the peers",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    scaling = not (args.no_scaling or args.only) and args.workers > 1

    workdir = Path(tempfile.mkdtemp(prefix="authserver-bench-"))
    # PostgreSQL with its defaults: every commit waits for its WAL flush, as in
    # production (the test suite's server skips fsync).
    with postgres_server(durable=True) as pg_url, redis_server() as redis_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "AUTHSERVER_ENV": "development",
            "AUTHSERVER_DATABASE_URL": pg_url,
            "AUTHSERVER_RATELIMIT_STORAGE_URL": redis_url,
            "AUTHSERVER_ISSUER": url,
            "AUTHSERVER_KEYS_DIR": str(workdir / "keys"),
        }
        for command in (["db", "upgrade"], ["keys", "ensure"]):
            subprocess.run(
                [str(BIN / "authserver"), *command], env=env, check=True, capture_output=True
            )
        # Enough single-use refresh tokens for every run at up to 2,500 req/s.
        runs = args.runs * (2 if scaling else 1)
        pool = 2500 * args.duration * runs
        creds = seed(env, pool, workdir)
        tokens = TokenPool((workdir / "tokens.txt").read_text().splitlines(), runs)
        others = {
            "postgresql": process_listening_on("postgres", make_url(pg_url).port),
            "redis": process_listening_on("redis-server", make_url(redis_url).port),
        }
        with served(port, args.workers, args, env) as pid:
            results = measure(url, pid, others, creds, workdir, args, tokens)
            memory = (
                None
                if args.no_memory or args.only
                else memory_run(url, pid, creds, workdir, results)
            )
        one_worker = None
        if scaling:
            with served(port, 1, args, env) as pid:
                args_one = argparse.Namespace(**{**vars(args), "only": SCALING_WORKLOADS})
                one_worker = measure(url, pid, others, creds, workdir, args_one, tokens)
    shutil.rmtree(workdir, ignore_errors=True)
    argon2 = argon2_rate(args.workers) if "password" in results else None
    peers = peer_figures(Path(args.peers)) if args.peers else {}
    write_results(results, memory, argon2, one_worker, peers, args)
    return 0


class TokenPool:
    """The seeded refresh tokens, each used once: a fresh slice for every run."""

    def __init__(self, tokens: list[str], runs: int) -> None:
        self.tokens, self.per_run, self.used = tokens, len(tokens) // runs, 0

    def next_slice(self) -> list[str]:
        start = self.used * self.per_run
        self.used += 1
        return self.tokens[start : start + self.per_run]


@contextmanager
def served(port: int, workers: int, args, env: dict) -> Iterator[int]:
    """`authserver serve` with ``workers`` processes; yields the master's pid."""
    options = ["--port", str(port), "--workers", str(workers), "--threads", str(args.threads)]
    server = subprocess.Popen(
        [str(BIN / "authserver"), "serve", *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}")
        yield server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def peer_figures(raw: Path) -> dict[tuple[str, str], float]:
    """Median req/s of each peer figure of the latest peers-bench run in ``raw``."""
    rows = []
    for path in raw.glob("*.jsonl"):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    figures: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if "rps" in row:
            figures.setdefault((row["suite"], row["label"]), []).append(row)
    # The last runs of each figure (run-peers.sh takes five).
    return {
        key: statistics.median(r["rps"] for r in sorted(runs, key=lambda r: r["stamp"])[-5:])
        for key, runs in figures.items()
    }


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http_json(url + "/readyz")
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def workloads(url: str, creds: dict, workdir: Path) -> dict[str, tuple[str, dict]]:
    app_auth, svc_auth = basic(creds["app"]), basic(creds["svc"])
    _, headers, _ = http_json(url + "/.well-known/jwks.json")
    _, _, body = http_json(
        url + "/oauth/token",
        data=LOGIN.encode(),
        headers={"Authorization": app_auth},
    )
    access = json.loads(body)["access_token"]
    return {
        "trivial": ("/healthz", {}),
        "jwks": ("/.well-known/jwks.json", {}),
        "jwks_304": (
            "/.well-known/jwks.json",
            {"WRK_HEADERS": f"If-None-Match: {headers['ETag']}", "WRK_EXPECT": "304"},
        ),
        "client_credentials": (
            "/oauth/token",
            {
                "WRK_METHOD": "POST",
                "WRK_BODY": "grant_type=client_credentials",
                "WRK_HEADERS": f"Authorization: {svc_auth}",
            },
        ),
        "introspection": (
            "/oauth/introspect",
            {
                "WRK_METHOD": "POST",
                "WRK_BODY": f"token={access}",
                "WRK_HEADERS": f"Authorization: {svc_auth}",
            },
        ),
        "verify": (  # seeds 002/004: what the apps call on every screen
            "/auth/token/verify/",
            {
                "WRK_METHOD": "POST",
                "WRK_BODY": json.dumps({"token": access}),
                "WRK_CONTENT_TYPE": "application/json",
            },
        ),
        "refresh": (
            "/oauth/token",
            {"WRK_METHOD": "POST", "WRK_HEADERS": f"Authorization: {app_auth}", "WRK_BODY": "-"},
        ),
        "password": (
            "/oauth/token",
            {
                "WRK_METHOD": "POST",
                "WRK_HEADERS": f"Authorization: {app_auth}",
                "WRK_BODY": LOGIN,
            },
        ),
    }


def measure(
    url: str, pid: int, others: dict, creds: dict, workdir: Path, args, tokens: TokenPool
) -> dict:
    defined = workloads(url, creds, workdir)
    selected = args.only or list(defined)
    results: dict[str, dict] = {}
    for name in selected:
        path, extra = defined[name]
        samples = []
        for run in range(args.runs):
            if name == "refresh":  # each token is used once: a fresh slice per run
                run_file = workdir / f"tokens-{run}.txt"
                run_tokens = tokens.next_slice()
                run_file.write_text("\n".join(run_tokens))
                extra = {**extra, "WRK_TOKENS": str(run_file)}
            cpu_before = cpu_seconds(pid)
            others_before = {k: cpu_seconds(p) for k, p in others.items() if p}
            sample = run_wrk(url, path, args.duration, extra, workdir)
            cpu = cpu_seconds(pid) - cpu_before
            others_cpu = {k: cpu_seconds(others[k]) - v for k, v in others_before.items()}
            database_cpu, redis_cpu = others_cpu.get("postgresql", 0), others_cpu.get("redis", 0)
            if name == "refresh" and sample["requests"] > len(run_tokens):
                raise RuntimeError("the refresh-token pool ran out: raise its size in main()")
            seconds = sample["duration_us"] / 1e6
            requests = max(sample["requests"], 1)
            samples.append(
                {
                    "rps": sample["requests"] / seconds,
                    "p50_ms": sample["p50_us"] / 1000,
                    "p99_ms": sample["p99_us"] / 1000,
                    "errors": sample["errors"] + sample["socket_errors"],
                    "cpu_ms_per_request": 1000 * cpu / requests,
                    "postgresql_cpu_ms_per_request": 1000 * database_cpu / requests,
                    "redis_cpu_ms_per_request": 1000 * redis_cpu / requests,
                    "wrk_core_share": sample["wrk_cpu_s"] / seconds,
                    "load1": os.getloadavg()[0],
                }
            )
        results[name] = {key: statistics.median(s[key] for s in samples) for key in samples[0]} | {
            "runs": samples
        }
        print(
            f"{name:20s} {results[name]['rps']:9.0f} req/s  p50 {results[name]['p50_ms']:.2f} ms"
            f"  p99 {results[name]['p99_ms']:.2f} ms  errors {results[name]['errors']:.0f}"
            f"  CPU {results[name]['cpu_ms_per_request']:.2f} ms"
            f" (+ PostgreSQL {results[name]['postgresql_cpu_ms_per_request']:.2f})",
            flush=True,
        )
    return results


def memory_run(url: str, pid: int, creds: dict, workdir: Path, results: dict) -> dict:
    """100,000 client-credentials requests (signing, the database, JSON: the paths that
    could leak); each worker's RSS after a warm-up and at the end."""
    path, extra = workloads(url, creds, workdir)["client_credentials"]
    run_wrk(url, path, 3, extra, workdir)  # warm-up: pools, caches, lazy imports
    before = worker_rss_kib(pid)
    rate = results.get("client_credentials", {}).get("rps") or 500
    requests = errors = 0
    while requests < MEMORY_RUN_REQUESTS:  # in chunks: the rate varies from run to run
        left = MEMORY_RUN_REQUESTS - requests
        chunk = run_wrk(url, path, max(2, math.ceil(1.1 * left / rate)), extra, workdir)
        requests += chunk["requests"]
        errors += chunk["errors"] + chunk["socket_errors"]
    after = worker_rss_kib(pid)
    growth = {str(p): (after[p] - before[p]) / before[p] for p in before if p in after}
    summary = {
        "requests": requests,
        "errors": errors,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "max_growth": max(growth.values()) if growth else None,
    }
    print(f"memory: {requests} requests, worker RSS growth {summary['max_growth']:.1%}")
    return summary


def write_results(
    results: dict,
    memory: dict | None,
    argon2: float | None,
    one_worker: dict | None,
    peers: dict,
    args,
) -> None:
    ceiling = results.get("trivial", {}).get("rps")
    lines = [
        f"authserver benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `authserver serve` "
        f"(granian, {args.workers} workers x {args.threads} threads), PostgreSQL (durable "
        f"commits), Redis limiter, wrk 2 threads / 8 connections on the same machine, median "
        f"of {args.runs} runs x {args.duration} s, {os.cpu_count()} cores; load average "
        f"{_load(results)} during the runs.",
        "",
        "| workload | req/s | p50 ms | p99 ms | p99/p50 | errors | CPU ms/req | PostgreSQL "
        "CPU ms/req | compared with | its req/s | ratio | goal | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for name, row in results.items():
        suite, label, goal, versus = GOALS.get(name, (None, None, None, ""))
        other = None
        if suite is not None:
            other = peers.get((suite, label))
        elif name == "password":
            other = argon2
        elif goal is not None:
            other = ceiling
        ratio = row["rps"] / other if other else None
        met = "" if goal is None or ratio is None else ("yes" if ratio >= goal else "no")
        tail = row["p99_ms"] / max(row["p50_ms"], 1e-6)
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{tail:.1f}{'' if tail <= 4 else ' (> 4)'} | {row['errors']:.0f} | "
            f"{row['cpu_ms_per_request']:.2f} | {row['postgresql_cpu_ms_per_request']:.2f} | "
            f"{versus if other else ''} | {f'{other:,.0f}' if other else ''} | "
            f"{f'{ratio:.2f}' if ratio is not None else ''} | "
            f"{f'>= {goal:g}' if goal is not None else ''} | {met} |"
        )
    lines.append("")
    busiest = max(results.values(), key=lambda row: row["wrk_core_share"])
    lines.append(
        f"wrk itself used at most {busiest['wrk_core_share']:.0%} of one core (of "
        f"{os.cpu_count()}): the load generator is not what limits these rates."
    )
    if argon2 is not None:
        lines.append(
            f"argon2id alone (the configured parameters, {args.workers} processes): "
            f"{argon2:,.1f} checks/s; password logins reach "
            f"{results['password']['rps'] / argon2:.0%} of it."
        )
    if "refresh" in results:
        lines += ["", *_database_capacity(results["refresh"], args.workers)]
    if one_worker:
        lines += [
            "",
            "One worker against two (one per core), same sitting:",
            "",
            "| workload | 1 worker req/s | CPU ms/req | 2 workers req/s | CPU ms/req | x |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, row in one_worker.items():
            two = results.get(name)
            if two:
                lines.append(
                    f"| {name} | {row['rps']:,.0f} | {row['cpu_ms_per_request']:.2f} | "
                    f"{two['rps']:,.0f} | {two['cpu_ms_per_request']:.2f} | "
                    f"{two['rps'] / row['rps']:.2f} |"
                )
    if memory is not None:
        lines += [
            "",
            f"Memory: {memory['requests']:,} client-credentials requests, worker RSS "
            f"{_rss(memory['rss_before_kib'])} -> {_rss(memory['rss_after_kib'])} MiB, "
            f"largest growth {memory['max_growth']:.1%} (target: under 10%).",
        ]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "results": results,
        "memory": memory,
        "argon2_rate": argon2,
        "one_worker": one_worker,
        "peers": {f"{suite}/{label}": rps for (suite, label), rps in peers.items()},
    }
    (out / "latest.md").write_text(table)
    if Path(args.output).resolve() == (ROOT / "bench" / "results").resolve():
        _show_in_docs(table)
    (out / "latest.json").write_text(json.dumps(payload, indent=2))
    (out / f"{stamp}.md").write_text(table)


def _load(results: dict) -> str:
    loads = [run["load1"] for row in results.values() for run in row["runs"]]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"


def _database_capacity(refresh: dict, workers: int) -> list[str]:
    """What one PostgreSQL primary carries, on paper, from this run's CPU per refresh."""
    database_ms = refresh["postgresql_cpu_ms_per_request"]
    server_ms = refresh["cpu_ms_per_request"]
    if database_ms <= 0:
        return []
    per_core = 1000 / database_ms
    per_instance = 1000 * workers / server_ms  # an instance's cores busy with refreshes only
    return [
        f"PostgreSQL: {database_ms:.2f} ms of CPU per refresh (claim, session, successor, "
        f"groups, one durable commit): one core of the primary carries ~{per_core:,.0f} "
        f"refreshes/s. An authserver instance of {workers} cores doing only refreshes "
        f"({server_ms:.2f} ms CPU each) serves ~{per_instance:,.0f}/s: one primary core "
        f"feeds ~{per_core / per_instance:.1f} such instances.",
    ]


def _show_in_docs(table: str) -> None:
    """The Performance guide (docs/performance.md) shows the latest table."""
    readme = ROOT / "docs" / "performance.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        readme.write_text(before + start + table + rest[rest.index(end) :])


def _rss(by_pid: dict) -> str:
    return "/".join(f"{kib / 1024:.0f}" for kib in by_pid.values())


if __name__ == "__main__":
    raise SystemExit(main())
