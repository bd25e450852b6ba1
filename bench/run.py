"""`make bench`: drive the real server (gunicorn, PostgreSQL, Redis) with wrk on loopback.

Starts a private PostgreSQL and Redis (as the test suite does), migrates, seeds users,
clients and a pool of refresh tokens, serves the app with gunicorn.conf.py exactly as
`make run` does, then runs each workload R times for D seconds with 8 connections and
prints one table of medians: requests/s, p50/p99, errors, CPU ms per request (server
processes only) and each rate's ratio to the trivial endpoint measured in the same run.
Results go to bench/results/ as Markdown and JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
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
TARGETS = {
    # workload: (target text, check(rate, ceiling) -> bool)
    "trivial": ("ceiling", None),
    "jwks": (">= 95% of trivial", lambda r, c: r >= 0.95 * c),
    "jwks_304": (">= jwks", None),
    "client_credentials": (">= 2,000 req/s (oidc-provider)", lambda r, c: r >= 2000),
    "introspection": (">= 60% of trivial", lambda r, c: r >= 0.6 * c),
    "refresh": (">= 1,600 req/s (10x SimpleJWT)", lambda r, c: r >= 1600),
    "password": ("bounded by argon2id", None),
}


def cpu_seconds(master_pid: int) -> float:
    """utime+stime of the gunicorn master and its workers, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [master_pid]
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
        pids += [int(pid) for pid in children]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / tick


def seed(env: dict[str, str], pool_size: int, workdir: Path) -> dict:
    """Users, clients and refresh tokens, written straight through the services."""
    script = f"""
import json, sys
from authserver import create_app
from authserver.extensions import db
from authserver.accounts.services import create_user
from authserver.oauth.clients import create_client
from authserver.oauth.models import Client
from authserver.oauth.sessions import Device, issue_refresh_token, start_session
app = create_app()
with app.app_context():
    user = create_user({PHONE!r}, {PASSWORD!r}, first_name="Bench")
    db.session.commit()
    app_client, app_secret = create_client(name="bench app", actor="bench",
        grant_types=["password", "refresh_token"], scope="profile properties.read")
    svc, svc_secret = create_client(name="bench service", actor="bench",
        grant_types=["client_credentials"], scope="properties.read", resource_server=True)
    client = db.session.get(Client, app_client.client_id)
    tokens = []
    for start in range(0, {pool_size}, 100):
        session = start_session(user, client, "profile properties.read", ["pwd"], Device("bench"))
        tokens += [issue_refresh_token(session) for _ in range(min(100, {pool_size} - start))]
        db.session.commit()
    open({str(workdir / "tokens.txt")!r}, "w").write("\\n".join(tokens) + "\\n")
    print(json.dumps({{"app": [app_client.client_id, app_secret],
                      "svc": [svc.client_id, svc_secret]}}))
"""
    out = subprocess.run(
        [str(BIN / "python"), "-c", script], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def basic(pair: list[str]) -> str:
    return "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()


def http_json(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def run_wrk(url: str, path: str, duration: int, env_extra: dict, workdir: Path) -> dict:
    summary = workdir / "summary.json"
    env = {**os.environ, "WRK_SUMMARY": str(summary), "WRK_THREADS": "2", **env_extra}
    subprocess.run(
        [
            "wrk",
            "-t2",
            "-c8",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "wrk.lua"),
            url + path,
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return json.loads(summary.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per workload (median)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="workloads to run")
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
            "AUTHSERVER_WORKERS": str(args.workers),
        }
        subprocess.run(
            [str(BIN / "authserver"), "db", "upgrade"], env=env, check=True, capture_output=True
        )
        subprocess.run(
            [str(BIN / "authserver"), "keys", "ensure"], env=env, check=True, capture_output=True
        )
        per_run = 3000 * args.duration
        runs = args.runs
        pool = per_run * runs
        creds = seed(env, pool, workdir)
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--config",
                str(ROOT / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(url)
            results = measure(url, server.pid, creds, workdir, args)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    shutil.rmtree(workdir, ignore_errors=True)
    write_results(results, args)
    return 0


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http_json(url + "/.well-known/jwks.json")
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def measure(url: str, pid: int, creds: dict, workdir: Path, args) -> dict:
    app_auth, svc_auth = basic(creds["app"]), basic(creds["svc"])
    _, headers, _ = http_json(url + "/.well-known/jwks.json")
    etag = headers["ETag"]
    _, _, body = http_json(
        url + "/oauth/token",
        data=f"grant_type=password&username={PHONE}&password={PASSWORD}".replace("+", "%2B")
        .replace(" ", "+")
        .encode(),
        headers={"Authorization": app_auth},
    )
    access = json.loads(body)["access_token"]
    trivial = "/healthz" if _exists(url + "/healthz") else "/.well-known/oauth-authorization-server"
    workloads = {
        "trivial": (trivial, {}),
        "jwks": ("/.well-known/jwks.json", {}),
        "jwks_304": (
            "/.well-known/jwks.json",
            {"WRK_HEADERS": f"If-None-Match: {etag}", "WRK_EXPECT": "304"},
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
        "refresh": (
            "/oauth/token",
            {
                "WRK_METHOD": "POST",
                "WRK_HEADERS": f"Authorization: {app_auth}",
                "WRK_BODY": "unused",
                "WRK_TOKENS": str(workdir / "tokens.txt"),
            },
        ),
        "password": (
            "/oauth/token",
            {
                "WRK_METHOD": "POST",
                "WRK_HEADERS": f"Authorization: {app_auth}",
                "WRK_BODY": "grant_type=password&username=%2B33612975634&password="
                + PASSWORD.replace(" ", "+"),
            },
        ),
    }
    selected = args.only or list(workloads)
    tokens_file = workdir / "tokens.txt"
    all_tokens = tokens_file.read_text().splitlines()
    per_run = len(all_tokens) // args.runs
    results: dict[str, dict] = {}
    for name in selected:
        path, extra = workloads[name]
        samples = []
        for run in range(args.runs):
            if name == "refresh":  # each token is used once: a fresh slice per run
                run_file = workdir / f"tokens-{run}.txt"
                run_file.write_text("\n".join(all_tokens[run * per_run : (run + 1) * per_run]))
                extra = {**extra, "WRK_TOKENS": str(run_file)}
            cpu_before = cpu_seconds(pid)
            sample = run_wrk(url, path, args.duration, extra, workdir)
            cpu = cpu_seconds(pid) - cpu_before
            seconds = sample["duration_us"] / 1e6
            samples.append(
                {
                    "rps": sample["requests"] / seconds,
                    "p50_ms": sample["p50_us"] / 1000,
                    "p99_ms": sample["p99_us"] / 1000,
                    "errors": sample["errors"] + sample["socket_errors"],
                    "cpu_ms_per_request": 1000 * cpu / max(sample["requests"], 1),
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


def _exists(url: str) -> bool:
    try:
        return http_json(url)[0] == 200
    except OSError:
        return False


def write_results(results: dict, args) -> None:
    ceiling = results.get("trivial", {}).get("rps")
    lines = [
        f"authserver benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: gunicorn "
        f"{args.workers} sync workers, PostgreSQL, Redis limiter, wrk 2 threads / 8 "
        f"connections, median of {args.runs} runs x {args.duration} s, {os.cpu_count()} cores.",
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
            else ("yes" if check(row["rps"], ceiling) else "no")
        )
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {ratio} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['p99_ms'] / max(row['p50_ms'], 1e-6):.1f} | {row['errors']:.0f} | "
            f"{row['cpu_ms_per_request']:.2f} | {target} | {met} |"
        )
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "latest.md").write_text(table)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    (out / f"{stamp}.md").write_text(table)


if __name__ == "__main__":
    raise SystemExit(main())
