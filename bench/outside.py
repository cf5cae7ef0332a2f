#!/usr/bin/env python3
"""Measures a mailroom build from outside, as issue 21's table does.

A running `mailroom serve` (of any build that has `mock-resend`, e.g. ec3df37 or
today's main) on a fresh database, its provider the build's own Resend mock
(unthrottled, `MAILROOM_SEND_RATE=0`, worker concurrency 8 as `bench fanout`):

1. campaign: an operator creates a tenant, verifies its domain against the mock,
   imports N contacts (`POST /customers/{id}/contacts/import`, 10,000 a call),
   sends one inline campaign to all of them (`POST /customers/{id}/send`, the
   same content as `bench fanout`); emails/s = N / (time from just before the
   POST to the mock's `accepted_at_ms` of the last email);
2. seeded webhooks: the provider ids of the messages it sent, read from its
   database, are given to a driver's (today's main, `--features tools`)
   `bench webhooks --target … --secret … --email-ids … --concurrency 32
   --events 20000`: events/s and p99 of signed webhooks for its own messages;
3. peak RSS of the server (VmHWM) after both.

Prints one line of JSON (the figures above, plus `campaign_s`, `accept_s` — the
POST's own time — and `webhook_errors`); the driver's table goes to stderr.
Every process and database it made is removed at the end, also on failure,
Ctrl-C or SIGTERM. Standard library only: SQLite is read with Python's `sqlite3`
module (no sqlite3 CLI needed), PostgreSQL with the `psql` client.

    bench/outside.py --bin /work/wt-base/target/release/mailroom \
        --driver /work/main/target/release/mailroom [--recipients 20200] \
        [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--build ec3df37]

With `--database-url postgres://…` a fresh database `mailroom_bench_outside_*`
is created beside the one named and dropped afterwards; without, a temp SQLite
file. On failure the mock's and the server's logs stay in the temp dir it names.
`--build` labels the output (default: the short commit checked out where the
binary lives, which is the build's commit only if nothing moved since).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

ADMIN_KEY = "mra_bench_admin_key_0123456789abcdef"  # >= 32 chars, as today's main requires
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # `bench webhooks`' default secret
CHUNK = 10_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, key=None, body=None, timeout=300):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw = res.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {url}: {e.code} {e.read()[:500]!r}") from None
    return json.loads(raw) if raw else None


def wait_for(what, check, timeout, procs, every=0.05):
    """Polls `check` until true; fails after `timeout` s or when one of `procs` has exited."""
    deadline = time.time() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, sqlite3.Error, subprocess.CalledProcessError):
            pass
        if dead := [p.args[1] for p in procs if p.poll() is not None]:
            raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}")
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)


class Db:
    """A fresh SQLite file or PostgreSQL database, and read-only queries on it."""

    def __init__(self, base_url, tmp):
        self.pg_admin = None
        if base_url and base_url.startswith("postgres"):
            self.name = f"mailroom_bench_outside_{uuid.uuid4().hex[:12]}"
            self.pg_admin = base_url
            self.psql(f"CREATE DATABASE {self.name}", base_url)
            u = urllib.parse.urlsplit(base_url)
            self.url = urllib.parse.urlunsplit(u._replace(path=f"/{self.name}"))
        else:
            self.path = os.path.join(tmp, "bench.db")
            self.url = f"sqlite://{self.path}"

    @staticmethod
    def psql(sql, url):
        out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                             check=True, capture_output=True, text=True)
        return out.stdout

    def rows(self, sql):
        if self.pg_admin:
            return [line.split("|") for line in self.psql(sql, self.url).splitlines()]
        con = sqlite3.connect(self.path, timeout=10)
        try:
            return [[str(v) for v in r] for r in con.execute(sql)]
        finally:
            con.close()

    def drop(self):
        if self.pg_admin:
            self.psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)", self.pg_admin)
        else:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.remove(self.path + suffix)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="the mailroom binary to measure")
    p.add_argument("--driver", required=True, help="a mailroom with `bench webhooks --email-ids` (--features tools)")
    p.add_argument("--database-url", help="postgres://… (a fresh database is made beside it); default SQLite")
    p.add_argument("--recipients", type=int, default=20_200)
    p.add_argument("--build", help="label for the output (default: the binary's checkout's short commit)")
    a = p.parse_args()
    build = a.build or subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(a.bin)), "rev-parse", "--short",
                                       "HEAD"], capture_output=True, text=True).stdout.strip() or a.bin
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the cleanup below runs.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))

    tmp = tempfile.mkdtemp(prefix="mailroom-outside-")
    procs, db, ok = [], None, False

    def start(name, args, env=None):
        log = open(os.path.join(tmp, f"{name}.log"), "w")
        procs.append(subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        return procs[-1]

    try:
        mock_port, port = free_port(), free_port()
        mock = f"http://127.0.0.1:{mock_port}"
        start("mock", [a.bin, "mock-resend", "--port", str(mock_port)])
        wait_for("the mock", lambda: http("GET", f"{mock}/_mock/stats", timeout=1) is not None, 10, procs)

        db = Db(a.database_url, tmp)
        env = {k: v for k, v in os.environ.items()
               if k not in ("RESEND_API_KEY", "MAILROOM_PROVIDER", "WEBHOOK_SECRET", "RUST_LOG", "DEBUG")}
        env.update(DATABASE_URL=db.url, MAILROOM_BIND=f"127.0.0.1:{port}", MAILROOM_ADMIN_KEY=ADMIN_KEY,
                   RESEND_API_KEY="re_bench", RESEND_BASE_URL=mock, MAILROOM_SEND_RATE="0",
                   MAILROOM_WORKER_CONCURRENCY=os.environ.get("MAILROOM_WORKER_CONCURRENCY", "8"),
                   WEBHOOK_SECRET=SECRET, MAILROOM_DNS_RESOLVER="127.0.0.1:9",  # no DNS leaves the machine
                   RUST_LOG="warn")
        server = start("server", [a.bin, "serve"], env)
        base = f"http://127.0.0.1:{port}"
        wait_for("the server", lambda: urllib.request.urlopen(f"{base}/healthz", timeout=1).status == 200, 30, procs)

        # The operator: a tenant with a verified domain, N contacts, one campaign.
        tenant = http("POST", f"{base}/customers", ADMIN_KEY, {"name": "Outside"})["id"]
        key = http("POST", f"{base}/customers/{tenant}/api-keys", ADMIN_KEY, {})["key"]
        http("POST", f"{base}/customers/{tenant}/domains", key, {"domain_name": "bench.example.com"})
        http("POST", f"{base}/customers/{tenant}/domains/verify", key, {})
        for start_i in range(0, a.recipients, CHUNK):
            contacts = [{"email": f"user{i}@example.org", "first_name": f"U{i}"}
                        for i in range(start_i, min(start_i + CHUNK, a.recipients))]
            http("POST", f"{base}/customers/{tenant}/contacts/import", key, {"contacts": contacts})

        t0 = time.time()
        r = http("POST", f"{base}/customers/{tenant}/send", key,
                 {"subject": "Hi {{first_name}}", "html": "<p>Hello {{first_name}}</p>"})
        accept_s = time.time() - t0
        if r.get("sent_to") != a.recipients:
            raise RuntimeError(f"campaign reached {r.get('sent_to')} not {a.recipients}")
        count = "SELECT COUNT(*) FROM messages WHERE provider_id IS NOT NULL"
        wait_for("every email", lambda: int(db.rows(count)[0][0]) >= a.recipients, 600, procs, every=0.2)
        accepted = http("GET", f"{mock}/_mock/emails")
        if len(accepted) != a.recipients:
            raise RuntimeError(f"the mock accepted {len(accepted)} emails, not {a.recipients}")
        campaign_s = max(e["accepted_at_ms"] for e in accepted) / 1000 - t0

        ids_file = os.path.join(tmp, "email-ids.txt")
        ids = [r[0] for r in db.rows("SELECT provider_id FROM messages WHERE provider_id IS NOT NULL")]
        with open(ids_file, "w") as f:
            f.write("\n".join(ids) + "\n")

        figures_file = os.path.join(tmp, "webhooks.json")
        subprocess.run([a.driver, "bench", "webhooks", "--target", f"{base}/webhooks/resend", "--secret", SECRET,
                        "--email-ids", ids_file, "--concurrency", "32", "--events", "20000",
                        "--json", figures_file], check=True, stdout=sys.stderr)
        with open(figures_file) as f:
            wh = json.load(f)

        with open(f"/proc/{server.pid}/status") as f:
            hwm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        print(json.dumps({
            "build": build, "db": "postgres" if db.pg_admin else "sqlite", "recipients": a.recipients,
            "campaign_emails_per_s": round(a.recipients / campaign_s), "campaign_s": round(campaign_s, 3),
            "accept_s": round(accept_s, 3), "webhook_events_per_s": round(wh["webhooks.events_per_s"]),
            "webhook_p99_ms": round(wh["webhooks.p99_ms"], 1), "webhook_errors": int(wh["webhooks.errors"]),
            "peak_rss_mb": round(hwm_kb / 1024, 1),
        }), flush=True)
        ok = True
    finally:
        for proc in reversed(procs):  # each in its own process group: it and any children it started
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if db is not None:
            try:
                db.drop()
            except (OSError, subprocess.CalledProcessError) as e:
                print(f"outside.py: could not drop {db.url}: {e}", file=sys.stderr)
                ok = False
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"outside.py: failed; logs in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    main()
