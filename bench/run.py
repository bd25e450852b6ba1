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
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import free_port, postgres_server, redis_server  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PASSWORD = "bench password 1"
PHONE = "+33612975634"
# The peers' figures from the issue (same machine class, wrk, 8 connections).
TARGETS = {
    # workload: (target text, check(rate, ceiling, argon2_rate) -> bool)
    "trivial": ("ceiling", None),
    "jwks": (">= 95% of trivial", lambda r, c, a: r >= 0.95 * c),
    "jwks_304": (">= jwks", None),
    "client_credentials": (">= 2,000 req/s (oidc-provider)", lambda r, c, a: r >= 2000),
    "introspection": (">= 60% of trivial", lambda r, c, a: r >= 0.6 * c),
    "verify": (">= 2,550 req/s (3x SimpleJWT)", lambda r, c, a: r >= 2550),
    "refresh": (">= 1,600 req/s (10x SimpleJWT)", lambda r, c, a: r >= 1600),
    "password": (">= 90% of argon2id's rate", lambda r, c, a: a is not None and r >= 0.9 * a),
}
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
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="authserver-bench-"))
    with postgres_server() as pg_url, redis_server() as redis_url:
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
        pool = 2500 * args.duration * args.runs
        creds = seed(env, pool, workdir)
        server = subprocess.Popen(
            [str(BIN / "authserver"), "serve", *serve_options(port, args)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(url)
            results = measure(url, server.pid, creds, workdir, args)
            memory = (
                None
                if args.no_memory or args.only
                else memory_run(url, server.pid, creds, workdir, results)
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    shutil.rmtree(workdir, ignore_errors=True)
    argon2 = argon2_rate(args.workers) if "password" in results else None
    write_results(results, memory, argon2, args)
    return 0


def serve_options(port: int, args) -> list[str]:
    return ["--port", str(port), "--workers", str(args.workers), "--threads", str(args.threads)]


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


def measure(url: str, pid: int, creds: dict, workdir: Path, args) -> dict:
    defined = workloads(url, creds, workdir)
    selected = args.only or list(defined)
    all_tokens = (workdir / "tokens.txt").read_text().splitlines()
    per_run = len(all_tokens) // args.runs
    results: dict[str, dict] = {}
    for name in selected:
        path, extra = defined[name]
        samples = []
        for run in range(args.runs):
            if name == "refresh":  # each token is used once: a fresh slice per run
                run_file = workdir / f"tokens-{run}.txt"
                run_file.write_text("\n".join(all_tokens[run * per_run : (run + 1) * per_run]))
                extra = {**extra, "WRK_TOKENS": str(run_file)}
            cpu_before = cpu_seconds(pid)
            sample = run_wrk(url, path, args.duration, extra, workdir)
            cpu = cpu_seconds(pid) - cpu_before
            if name == "refresh" and sample["requests"] > per_run:
                raise RuntimeError("the refresh-token pool ran out: raise its size in main()")
            seconds = sample["duration_us"] / 1e6
            samples.append(
                {
                    "rps": sample["requests"] / seconds,
                    "p50_ms": sample["p50_us"] / 1000,
                    "p99_ms": sample["p99_us"] / 1000,
                    "errors": sample["errors"] + sample["socket_errors"],
                    "cpu_ms_per_request": 1000 * cpu / max(sample["requests"], 1),
                    "wrk_core_share": sample["wrk_cpu_s"] / seconds,
                }
            )
        results[name] = {key: statistics.median(s[key] for s in samples) for key in samples[0]} | {
            "runs": samples
        }
        print(
            f"{name:20s} {results[name]['rps']:9.0f} req/s  p50 {results[name]['p50_ms']:.2f} ms"
            f"  p99 {results[name]['p99_ms']:.2f} ms  errors {results[name]['errors']:.0f}",
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


def write_results(results: dict, memory: dict | None, argon2: float | None, args) -> None:
    ceiling = results.get("trivial", {}).get("rps")
    lines = [
        f"authserver benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `authserver serve` "
        f"(granian, {args.workers} workers x {args.threads} threads), PostgreSQL, Redis "
        f"limiter, wrk 2 threads / 8 connections on the same machine, median of {args.runs} "
        f"runs x {args.duration} s, {os.cpu_count()} cores.",
        "",
        "| workload | req/s | vs trivial | p50 ms | p99 ms | p99/p50 | errors | CPU ms/req "
        "| target | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, row in results.items():
        target, check = TARGETS.get(name, ("", None))
        ratio = f"{row['rps'] / ceiling:.0%}" if ceiling else "-"
        met = (
            ""
            if check is None or ceiling is None
            else ("yes" if check(row["rps"], ceiling, argon2) else "no")
        )
        tail = row["p99_ms"] / max(row["p50_ms"], 1e-6)
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {ratio} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{tail:.1f}{'' if tail <= 4 else ' (> 4)'} | {row['errors']:.0f} | "
            f"{row['cpu_ms_per_request']:.2f} | {target} | {met} |"
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
    if memory is not None:
        lines.append(
            f"Memory: {memory['requests']:,} client-credentials requests, worker RSS "
            f"{_rss(memory['rss_before_kib'])} -> {_rss(memory['rss_after_kib'])} MiB, "
            f"largest growth {memory['max_growth']:.1%} (target: under 10%)."
        )
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {"results": results, "memory": memory, "argon2_rate": argon2}
    (out / "latest.md").write_text(table)
    if Path(args.output).resolve() == (ROOT / "bench" / "results").resolve():
        _show_in_docs(table)
    (out / "latest.json").write_text(json.dumps(payload, indent=2))
    (out / f"{stamp}.md").write_text(table)


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
