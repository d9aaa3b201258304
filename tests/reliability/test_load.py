"""Load: 500 uploads from 16 concurrent clients; 0 errors, 0 lost, every job done."""

from __future__ import annotations

import pytest
import requests

from devstack.api import AUTH, ApiServer
from devstack.client import wait_ready
from devstack.processes import wait_until
from devstack.worker import Workers

from . import load, results

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TOTAL, CLIENTS = 500, 16


@pytest.fixture
def api_stack(redis_url, model_store, tmp_path):
    api = ApiServer(redis_url, tmp_path, workers=2).start()
    workers = Workers(redis_url, model_store.root, tmp_path)
    workers.start("load-1", MAX_BATCH="32", DECODE_THREADS="2")
    wait_ready(api.url)
    yield api
    workers.stop_all()
    api.stop()


def test_morning_rush_through_the_api(api_stack, fullres_xrays):
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=CLIENTS)
    session.mount("http://", adapter)
    payloads = {p: p.read_bytes() for p in fullres_xrays}

    counter = iter(range(10**9))

    def send(path):
        # Bytes after the JPEG end marker are ignored by decoders but make every upload
        # distinct, so each one goes through inference rather than the content cache.
        body = payloads[path] + f"upload-{next(counter)}".encode()
        resp = session.post(
            api_stack.url + "/v1/predictions",
            headers=AUTH,
            files={"file": (path.name, body)},
            timeout=60,
        )
        return resp.status_code, (resp.json()[0] if resp.status_code == 202 else None)

    report = load.run(list(payloads), send, TOTAL, CLIENTS)
    assert report.errors == [] and len(report.accepted) == TOTAL

    def all_final():
        done = 0
        for job, _ in report.accepted:
            body = session.get(
                api_stack.url + job["links"]["self"], headers=AUTH, timeout=10
            ).json()
            if body["status"] not in ("done", "failed"):
                return False
            done += body["status"] == "done"
        return done

    done = wait_until(all_final, timeout=600, interval=2, what="every job final")
    finals = [
        session.get(api_stack.url + j["links"]["self"], headers=AUTH, timeout=10).json()
        for j, _ in report.accepted
    ]
    # from the moment the client started sending to the result written (same host clock)
    latencies = [
        f["finished_at"] - sent * 1000 for f, (_, sent) in zip(finals, report.accepted, strict=True)
    ]
    lost = TOTAL - done
    assert lost == 0
    assert not any(f["cached"] for f in finals), "an upload was served from the cache"
    results.record(
        "load: 500 uploads, 16 clients, API direct",
        uploads=TOTAL,
        clients=CLIENTS,
        errors=len(report.errors),
        lost=lost,
        cached=sum(f["cached"] for f in finals),
        wall_seconds=round(report.wall_seconds, 1),
        accept_ms=report.percentiles(report.accept_ms),
        upload_to_result_ms=report.percentiles(latencies),
        note="48 full-resolution X-rays cycled, each upload made byte-distinct (no cache hits)",
    )
