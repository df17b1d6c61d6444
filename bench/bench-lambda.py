#!/usr/bin/env python3
"""Cold start, memory and latency of a function binary under a local Lambda Runtime API.

A small fake of the Lambda Runtime API (the HTTP interface every provided.al2023 runtime polls)
spawns the binary, hands it an event and times:
  init     spawn -> the runtime's first GET /invocation/next (config, pool, first DB connection)
  first    event handed over -> response posted (first request: JWT, DB session, queries)
  warm     the same event repeated on the now warm process (p50 / p95 / p99)
  rss      peak resident memory of the process (VmHWM)

It excludes what only AWS adds (downloading the code, starting the microVM, the Secrets Manager
round trip). Needs the local database with the demo workspace: run scripts/dev.sh once.

usage: bench/bench-lambda.py BINARY EVENT [--cold N] [--warm M] [--unique TEXT] [--against REFERENCE]
e.g.:  bench/bench-lambda.py target/release/projects events/projects-list.json --against target/release/bench-hello
--against REFERENCE alternates every cold start (and the warm run) with a reference binary, a
hello-world lambda_runtime function built with the same profile (bench/hello), and reports both:
the machine's own floor, measured in the same run.
--unique TEXT makes every invocation's event different (TEXT becomes TEXT_<random>), e.g. a
Stripe event id, so a worker applies each one instead of recognising a duplicate.
"""
import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
ENV = {
    "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", "postgres://app_api:app_api@127.0.0.1:5432/saas_dev"),
    "AUTH_HS256_SECRET": "local-development-secret-never-use-in-production",
    "RUST_LOG": "warn",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
    "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    "AWS_REGION": "us-east-1",
}


class Runtime:
    """Hands out `count` copies of the event and records when each step happened."""

    def __init__(self, event, count, unique=None):
        self.event = event
        self.unique = unique
        self.remaining = count
        self.first_next = None
        self.sent = {}
        self.done = {}
        self.errors = []
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.ready = threading.Event()

    def handler(runtime):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    self.send_error(404)
                    return
                with runtime.lock:
                    if runtime.first_next is None:
                        runtime.first_next = time.perf_counter()
                        runtime.ready.set()
                    if runtime.remaining == 0:
                        runtime.finished.set()
                        wait = True
                    else:
                        runtime.remaining -= 1
                        request_id = f"req-{runtime.remaining}"
                        wait = False
                if wait:
                    time.sleep(30)  # long poll: the process is killed before this returns
                    return
                # Requests are issued back to back: the previous response has been posted.
                runtime.proceed.wait()
                runtime.proceed.clear()
                body = runtime.event
                if runtime.unique:
                    body = body.replace(runtime.unique, runtime.unique + b"_" + uuid.uuid4().hex.encode())
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 28_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                runtime.sent[request_id] = time.perf_counter()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = self.rfile.read(length)
                parts = self.path[len(PREFIX):].split("/")
                if len(parts) >= 4 and parts[3] == "response":
                    runtime.done[parts[2]] = (time.perf_counter(), payload)
                else:
                    runtime.errors.append((self.path, payload[:300]))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                runtime.proceed.set()

        return Handler


def run_once(binary, event, invocations, unique=None):
    runtime = Runtime(event, invocations, unique)
    runtime.proceed = threading.Event()
    runtime.proceed.set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Runtime.handler(runtime))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, **ENV, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not runtime.finished.wait(120):
            raise SystemExit("the function did not finish its invocations in time")
        with open(f"/proc/{process.pid}/status") as status:
            rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    finally:
        process.kill()
        process.wait()
        server.shutdown()
    if runtime.errors:
        raise SystemExit(f"invocation errors: {runtime.errors[:3]}")
    order = sorted(runtime.sent, key=runtime.sent.get)
    latencies = [(runtime.done[r][0] - runtime.sent[r]) * 1000 for r in order]
    response = json.loads(runtime.done[order[0]][1])
    status_code = response.get("statusCode") if isinstance(response, dict) else None
    if isinstance(response, dict) and response.get("batchItemFailures"):
        raise SystemExit(f"the worker failed its message: {response}")
    return {
        "init_ms": (runtime.first_next - started) * 1000,
        "first_ms": latencies[0],
        "warm_ms": latencies[1:],
        "rss_mb": rss_kb / 1024,
        "status": status_code,
    }


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("event")
    parser.add_argument("--cold", type=int, default=15, help="cold starts to measure")
    parser.add_argument("--warm", type=int, default=300, help="warm invocations after one cold start")
    parser.add_argument("--unique", help="text replaced by a fresh value in each invocation's event")
    parser.add_argument("--against", help="a reference binary measured alternately in the same run")
    args = parser.parse_args()
    event = open(args.event, "rb").read()
    unique = args.unique.encode() if args.unique else None

    binaries = [args.binary] + ([args.against] if args.against else [])
    colds = {binary: [] for binary in binaries}
    for _ in range(args.cold):
        for binary in binaries:
            colds[binary].append(run_once(binary, event, 1, unique))
    for binary in binaries:
        report(binary, args, colds[binary], run_once(binary, event, args.warm + 1, unique))


def report(binary, args, colds, warm):
    statuses = {c["status"] for c in colds} | {warm["status"]}
    size = os.path.getsize(binary) / (1024 * 1024)
    print(f"binary      {binary} ({size:.1f} MiB), event {os.path.basename(args.event)}, status {sorted(statuses)}")
    print(f"init        median {statistics.median(c['init_ms'] for c in colds):6.1f} ms   "
          f"max {max(c['init_ms'] for c in colds):6.1f} ms   ({args.cold} cold starts)")
    print(f"first req   median {statistics.median(c['first_ms'] for c in colds):6.1f} ms   "
          f"max {max(c['first_ms'] for c in colds):6.1f} ms")
    print(f"init+first  median {statistics.median(c['init_ms'] + c['first_ms'] for c in colds):6.1f} ms")
    w = warm["warm_ms"]
    print(f"warm req    p50 {percentile(w, 50):6.2f} ms   p95 {percentile(w, 95):6.2f} ms   "
          f"p99 {percentile(w, 99):6.2f} ms   ({len(w)} invocations)")
    print(f"peak RSS    {max([c['rss_mb'] for c in colds] + [warm['rss_mb']]):.1f} MiB")

if __name__ == "__main__":
    main()
