"""Throughput and latency through the real stack: ``python -m bench.pipeline``.

Starts a private stack on free loopback ports (redis-server, the API under gunicorn, one
inference worker with its default settings serving the production ResNet50 at 224 px with
random weights, and nginx in front of the API with the production server block:
nginx/pneumonia.conf.template, TLS and all), then drives it with 1, 4, 16 and 64 concurrent
closed-loop clients, each uploading real full-resolution X-rays from
../shared/data/chest_xray_fullres_sample over its own kept-alive HTTPS connection (as an
integration would) and waiting for the result before the next upload. ``--direct`` leaves
nginx out (clients talk to gunicorn), to see what nginx costs.

Measured per level: throughput (results per second), upload-to-result latency (the worker's
``finished_at`` minus the client's send time; p50/p95/p99) and the API's accept latency (the
upload's 202, as the client sees it). One watcher thread learns which results are ready by
reading every outstanding job record from Redis in one round trip every 20 ms, so polling
loads neither the API being measured nor this process. Every upload carries a unique
JPEG comment, so none is answered from the result cache. The worker's raw batched model
throughput is measured in the same run (before and after the load), and pipeline efficiency
is pipeline img/s at saturation / raw model img/s. Because every process shares the same few
cores, the CPU each one spends per finished image is reported too, and the same efficiency by
CPU: the model's CPU per image / what the server side (nginx, API, Redis, worker) spends per
image. Results: a table and var/bench/pipeline.json.

The load generator is kept cheap on purpose (bodies built once per upload, plain http.client,
one watcher for all results): it shares the cores with the system it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import logging
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench import common
from devstack.api import ApiServer
from devstack.client import wait_ready
from devstack.nginx import Nginx
from devstack.processes import free_port
from devstack.redis_server import RedisServer
from devstack.settings import FULLRES
from devstack.worker import Workers
from jobs.queue import JobQueue
from model.serving.predictor import load_predictor
from model.serving.settings import WorkerSettings
from pneumonia_api import gunicorn_conf

TOKEN = "bench-token-" + "b" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Stack:
    """redis-server (no persistence) + API (gunicorn) + one worker with its own defaults +
    nginx, all from devstack, on loopback, logs under ``tmp``."""

    def __init__(self, store: Path, tmp: Path, api_workers: int | None, nginx: bool = True):
        self.redis = RedisServer(tmp / "redis", durable=False)
        self.redis_url = self.redis.url
        self.api_server = ApiServer(
            self.redis_url,
            tmp,
            workers=api_workers,
            quick=False,
            API_TOKEN=TOKEN,
            GUNICORN_ACCESSLOG="/dev/null",
            PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom"),
        )
        self.api = self.api_server.url
        self.workers = Workers(self.redis_url, store, tmp, quick=False)
        self.worker_port = free_port()
        self.worker_metrics = f"http://127.0.0.1:{self.worker_port}/metrics"
        # The production server block with the API where the UI would be: the upload then
        # takes the production TLS, buffering and proxy settings straight to the API.
        upstream = f"127.0.0.1:{self.api_server.port}"
        self.nginx = Nginx(tmp, upstream, tmp / "nginx.log") if nginx else None
        self.procs: dict = {}  # service name -> process, for the CPU accounting
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self.procs["redis"] = self.redis.start().proc
        self.procs["api"] = self.api_server.start().proc
        self.procs["worker"] = self.workers.start(
            "worker", WORKER_NAME="bench", MODEL_CACHE_DIR=str(common.MODEL_CACHE),
            WORKER_METRICS_PORT=str(self.worker_port),
        )  # fmt: skip
        wait_ready(self.api, timeout=600, interval=1)
        self.url, self.ca = self.api, None
        if self.nginx:
            self.procs["nginx"] = self.nginx.start().proc
            self.url, self.ca = self.nginx.https_url, self.nginx.ca

    def model_seconds(self) -> float:
        """Seconds the worker has spent inside model calls so far (its own histogram)."""
        text = requests.get(self.worker_metrics, timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name == "pneumonia_worker_inference_duration_seconds":
                return sum(s.value for s in family.samples if s.name.endswith("_sum"))
        return 0.0

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each service (gunicorn's workers included)."""
        return {name: _tree_cpu(p.pid) for name, p in self.procs.items()}

    def close(self):
        """Stop everything, newest first."""
        if self.nginx:
            self.nginx.stop()
        self.workers.stop_all()
        self.api_server.stop()
        self.redis.stop()


_UPLOADS = itertools.count()  # one sequence for the whole run: no level repeats another's bytes


def uploads(files: list[Path]):
    """Endless distinct uploads, as (content type, multipart body): each original JPEG with a
    unique comment (COM) segment, so none is answered from the API's result cache (keyed by
    the bytes' SHA-256)."""
    originals = [(f.name, f.read_bytes()) for f in files]
    nonce = os.urandom(4).hex()
    for n in _UPLOADS:
        name, data = originals[n % len(originals)]
        note = f"bench upload {nonce}-{n}".encode()
        com = b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note
        boundary = f"bench{nonce}{n:012d}"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"'
            "\r\nContent-Type: image/jpeg\r\n\r\n"
        ).encode()
        body = head + data[:2] + com + data[2:] + f"\r\n--{boundary}--\r\n".encode()
        yield f"multipart/form-data; boundary={boundary}", body


class Connection:
    """One client's kept-alive connection to the stack (HTTPS through nginx, or HTTP)."""

    def __init__(self, url: str, ca: str | None):
        u = urlsplit(url)
        self.host, self.port, self.tls = u.hostname, u.port, u.scheme == "https"
        self.context = ssl.create_default_context(cafile=ca) if self.tls else None
        self.conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=60, context=self.context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def post(self, path: str, content_type: str, body: bytes) -> tuple[int, bytes]:
        headers = {**AUTH, "Content-Type": content_type}
        for attempt in (1, 2):
            reused = self.conn is not None
            self.conn = self.conn or self._open()
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: reconnect
                raise
            if resp.will_close:
                self.close()
            return resp.status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Load:
    """``clients`` closed-loop clients for ``seconds``; records every job they submit."""

    def __init__(self, stack: Stack, files: list[Path], clients: int, in_flight: int = 1):
        self.stack, self.clients, self.in_flight = stack, clients, in_flight
        self.source, self.lock = uploads(files), threading.Lock()
        self.jobs: list[dict] = []
        self.waiting: dict[str, tuple[dict, threading.Event]] = {}
        self.stop, self.finished = threading.Event(), threading.Event()

    def client(self):
        conn = Connection(self.stack.url, self.stack.ca)
        while not self.stop.is_set():
            with self.lock:
                content_type, body = next(self.source)
            sent = time.time()
            try:
                status, data = conn.post("/v1/predictions", content_type, body)
            except (OSError, http.client.HTTPException) as exc:
                self.jobs.append({"sent": sent, "error": type(exc).__name__})
                continue
            accepted = time.time()
            if status != 202:
                self.jobs.append({"sent": sent, "error": status})
                continue
            pid = json.loads(data)[0]["id"]
            job = {"sent": sent, "accept_ms": 1000 * (accepted - sent), "id": pid}
            done = threading.Event()
            with self.lock:
                self.jobs.append(job)
                self.waiting[job["id"]] = (job, done)
            if not done.wait(90):
                break  # lost: do not wait for ever
        conn.close()

    def watch(self):
        """One thread reads every outstanding job's status from Redis in one round trip every
        20 ms: 64 clients polling on their own would load this process (and its GIL). Short, so
        clients whose results finish apart are not released together: a long poll lumps them
        into one burst of uploads, which no set of independent users makes."""
        queue = JobQueue(redis.Redis.from_url(self.stack.redis_url))
        while not self.finished.is_set():
            with self.lock:
                ids = list(self.waiting)
            pipe = queue.r.pipeline(transaction=False)
            for pid in ids:
                pipe.hmget(queue.keys.prediction(pid), "status", "finished_at")
            for pid, (status, finished) in zip(ids, pipe.execute() if ids else [], strict=True):
                if status in (b"done", b"failed"):
                    with self.lock:
                        job, done = self.waiting.pop(pid)
                    job.update(status=status.decode(), finished=int(finished) / 1000)
                    done.set()
            time.sleep(0.02)

    def run(self, warmup: float, seconds: float) -> dict:
        threads = [threading.Thread(target=self.client, daemon=True) for _ in range(self.clients)]
        watcher = threading.Thread(target=self.watch, daemon=True)
        for t in [*threads, watcher]:
            t.start()
        time.sleep(warmup)
        t0, cpu0, own0 = time.time(), self.stack.cpu(), common.cpu_seconds()
        busy0 = self.stack.model_seconds()
        time.sleep(seconds)
        t1, cpu1, own1 = time.time(), self.stack.cpu(), common.cpu_seconds()
        busy1 = self.stack.model_seconds()
        load = common.loadavg()
        self.stop.set()
        for t in threads:
            t.join(150)
        self.finished.set()
        watcher.join(10)
        done = [j for j in self.jobs if j.get("status") == "done"]
        in_window = [j for j in done if t0 <= j["finished"] < t1]
        measured = [j for j in done if t0 <= j["sent"] < t1]  # each one waited for to the end
        latency = [1000 * (j["finished"] - j["sent"]) for j in measured]
        accept = [j["accept_ms"] for j in self.jobs if "accept_ms" in j and t0 <= j["sent"] < t1]
        return {
            "clients": self.clients,
            "seconds": t1 - t0,
            "img_s": len(in_window) / (t1 - t0),
            "latency_ms": _percentiles(latency),
            "accept_ms": _percentiles(accept),
            "errors": sum(1 for j in self.jobs if "error" in j or j.get("status") == "failed"),
            # share of the window the worker spent inside model calls (per batch it may have
            # in flight): its plumbing (Redis, decoding) keeps the model fed when near 1
            "model_busy": (busy1 - busy0) / (t1 - t0) / self.in_flight,
            "load": load,
            # CPU ms per finished image of each service, and of this load generator
            "cpu_ms_per_img": {
                **{k: 1000 * (cpu1[k] - cpu0[k]) / max(1, len(in_window)) for k in cpu0},
                "load generator": 1000 * (own1 - own0) / max(1, len(in_window)),
            },
            "jobs": [
                {k: j.get(k) for k in ("sent", "accept_ms", "finished", "status", "error")}
                for j in self.jobs
                if t0 <= j["sent"] < t1
            ],
        }


def _tree_cpu(pid: int) -> float:
    """utime + stime of a process and its live descendants, in seconds."""
    total = 0.0
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total += sum(_tree_cpu(int(c)) for c in children)
    return total


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "n": len(values)}


def raw_model(version_dir: Path, seconds: float) -> dict:
    """The worker's own predictor (default backend, MAX_BATCH, threads) on full batches.

    Driven as the worker drives it: ``Predictor.concurrency`` batches in flight at once.
    """
    s = WorkerSettings()
    p = load_predictor(version_dir, s.backend, s.max_batch, s.threads, common.MODEL_CACHE)
    batch = np.resize(
        common.real_xrays(p.input_size, s.max_batch), (s.max_batch, p.input_size, p.input_size, 3)
    )
    p.predict(batch)
    done = [0] * p.concurrency
    t0, cpu0 = time.perf_counter(), common.cpu_seconds()

    def feed(i: int) -> None:
        while done[i] == 0 or time.perf_counter() - t0 < seconds:
            p.predict(batch)
            done[i] += len(batch)

    feeders = [threading.Thread(target=feed, args=(i,)) for i in range(p.concurrency)]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    n = sum(done)
    return {
        "backend": p.backend,
        "batch": s.max_batch,
        "in_flight": p.concurrency,
        "img_s": n / (time.perf_counter() - t0),
        "cpu_ms_per_img": 1000 * (common.cpu_seconds() - cpu0) / n,
        "load": common.loadavg(),
    }


def run(args) -> dict:
    files = sorted(FULLRES.glob("*/*.jpeg"))
    if not files:
        sys.exit(f"no X-rays at {FULLRES}: put the shared data beside the project")
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed: run `make system`")
    m = common.machine()
    print(f"machine: {common.describe(m)}", flush=True)
    load_start = common.loadavg()
    store, version_dir = common.production_store()
    raw = [raw_model(version_dir, args.raw_seconds)]
    print(f"raw model: {raw[0]}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    stack = Stack(store, tmp, args.api_workers, nginx=not args.direct)
    levels = []
    try:
        for clients in args.clients:
            res = Load(stack, files, clients, raw[0]["in_flight"]).run(args.warmup, args.seconds)
            levels.append(res)
            print(
                f"{clients:3d} clients: {res['img_s']:.2f} img/s, latency p50 "
                f"{res['latency_ms']['p50']:.0f} ms, load {res['load']}",
                flush=True,
            )
    finally:
        stack.close()
    raw.append(raw_model(version_dir, args.raw_seconds))
    with contextlib.suppress(OSError):
        shutil.rmtree(tmp)
    raw_img_s = statistics.mean(r["img_s"] for r in raw)
    raw_cpu = statistics.mean(r["cpu_ms_per_img"] for r in raw)
    peak = max(levels, key=lambda r: r["img_s"])
    server = sum(v for k, v in peak["cpu_ms_per_img"].items() if k != "load generator")
    s = WorkerSettings()
    return {
        "machine": m,
        "path": (
            "client -> API (gunicorn, no nginx) -> Redis -> worker"
            if args.direct
            else "client -> nginx (TLS, kept-alive) -> API (gunicorn) -> Redis -> worker"
        ),
        "worker": {
            "backend": raw[0]["backend"],
            "max_batch": s.max_batch,
            "batch_wait_ms": s.batch_wait_ms,
            "decode_threads": s.decode_threads,
            "nice": s.nice,
        },
        "api_workers": args.api_workers or gunicorn_conf.workers,
        "api_threads": gunicorn_conf.threads,
        "raw_model": raw,
        "raw_model_img_s": raw_img_s,
        "levels": levels,
        "saturation_img_s": peak["img_s"],
        "efficiency": peak["img_s"] / raw_img_s,
        "raw_model_cpu_ms_per_img": raw_cpu,
        "server_cpu_ms_per_img": server,
        "efficiency_cpu": raw_cpu / server,
        "load_start": load_start,
        "load_end": common.loadavg(),
    }


def report(res: dict) -> str:
    w, raw0 = res["worker"], res["raw_model"][0]
    head = (
        f"path: {res['path']}; worker: {w['backend']}, MAX_BATCH {w['max_batch']}, "
        f"BATCH_WAIT_MS {w['batch_wait_ms']}, DECODE_THREADS {w['decode_threads']}, "
        f"WORKER_NICE {w['nice']}; "
        f"API: {res['api_workers']} gunicorn workers x {res.get('api_threads', '?')} threads\n"
        f"raw model (same run, before/after): "
        + " / ".join(f"{r['img_s']:.1f}" for r in res["raw_model"])
        + f" img/s at batch {raw0['batch']} x {raw0.get('in_flight', 1)} in flight, "
        + " / ".join(f"{r['cpu_ms_per_img']:.1f}" for r in res["raw_model"])
        + " CPU ms per image\n"
        f"load average {res['load_start']} at start, {res['load_end']} at end\n"
    )
    rows = [
        [
            r["clients"],
            r["img_s"],
            r["latency_ms"]["p50"],
            r["latency_ms"]["p95"],
            r["latency_ms"]["p99"],
            r["accept_ms"]["p50"],
            r["accept_ms"]["p95"],
            r["latency_ms"]["n"],
            r["errors"],
            f"{r.get('model_busy', float('nan')):.0%}",
            r["load"],
        ]
        for r in res["levels"]
    ]
    headers = [
        "clients",
        "img/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "accept p50",
        "accept p95",
        "n",
        "errors",
        "model busy",
        "load avg",
    ]
    names = list(res["levels"][0]["cpu_ms_per_img"]) if res["levels"] else []
    cpu_rows = [[r["clients"], *(r["cpu_ms_per_img"][n] for n in names)] for r in res["levels"]]
    cpu_table = "\nCPU ms per finished image, by process:\n" + common.table(
        ["clients", *names], cpu_rows
    )
    acc16 = next((r["accept_ms"]["p95"] for r in res["levels"] if r["clients"] == 16), None)
    peak_busy = max(res["levels"], key=lambda r: r["img_s"]).get("model_busy", float("nan"))
    foot = (
        f"\npipeline efficiency at saturation: {res['saturation_img_s']:.1f} / "
        f"{res['raw_model_img_s']:.1f} = {res['efficiency']:.2f} (target >= 0.85); "
        f"by CPU: model {res['raw_model_cpu_ms_per_img']:.1f} ms / server side "
        f"{res['server_cpu_ms_per_img']:.1f} ms per image = {res['efficiency_cpu']:.2f}\n"
        f"model busy at saturation: {peak_busy:.0%} of the time (inside model calls)\n"
        f"API accept p95 at 16 clients: {acc16:.0f} ms (target <= 20 ms)"
        if acc16 is not None
        else ""
    )
    return head + common.table(headers, rows) + cpu_table + foot


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seconds", type=float, default=25.0, help="measured, per level")
    parser.add_argument("--warmup", type=float, default=5.0, help="before measuring, per level")
    parser.add_argument("--raw-seconds", type=float, default=8.0)
    parser.add_argument(
        "--api-workers", type=int, default=None, help="default: the API's own (gunicorn_conf)"
    )
    parser.add_argument("--direct", action="store_true", help="clients -> gunicorn, no nginx")
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    res = run(args)
    common.finish("pipeline", res, report(res))


if __name__ == "__main__":
    main()
