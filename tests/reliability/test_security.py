"""Security proofs: tokens on every API route, no patient identifier anywhere, audited deps."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
import requests

from devstack.api import AUTH, ApiServer
from devstack.client import result, wait_ready
from devstack.redis_server import RedisServer
from devstack.settings import ROOT
from devstack.worker import Workers
from pneumonia_api import create_app
from tests.api.dicom_factory import PATIENT_ID, PATIENT_NAME, dicom_bytes

from . import results
from .test_privacy_e2e import redis_contents

PUBLIC = {"/healthz", "/readyz", "/metrics", "/static/<path:filename>"}


BAD_CREDENTIALS = {
    "missing": {},
    "wrong token": {"Authorization": "Bearer nope"},
    "empty token": {"Authorization": "Bearer "},
    "another scheme": {"Authorization": "Basic " + "t" * 40},
    "token without scheme": {"Authorization": "t" * 40},
}


def test_every_api_route_but_health_requires_the_token(redis_url):
    app = create_app({"REDIS_URL": redis_url, "API_TOKEN": "t" * 40})
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC:
            continue
        path = rule.rule.replace("<pid>", "0" * 32)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            for kind, headers in BAD_CREDENTIALS.items():
                resp = client.open(path, method=method, headers=headers)
                assert resp.status_code == 401, (method, path, kind)
                checked += 1
            # and the right token does get past the check (the test can tell the difference)
            ok = client.open(path, method=method, headers={"Authorization": "Bearer " + "t" * 40})
            assert ok.status_code != 401, (method, path)
    assert checked >= 5 * len(BAD_CREDENTIALS)
    results.record(
        "security: API routes refuse a missing or wrong token",
        routes_times_credentials=checked,
        credentials=", ".join(BAD_CREDENTIALS),
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_a_dicom_patient_name_leaves_no_trace(tmp_path, model_store):
    """Through real processes: Redis (memory and AOF on disk) and every log of the run."""
    server = RedisServer(tmp_path / "redis").start()
    api = ApiServer(server.url, tmp_path).start()
    workers = Workers(server.url, model_store.root, tmp_path)
    try:
        # keras: ready in seconds on a busy host (the backend is not what is proved here)
        workers.start("w1", LOG_LEVEL="DEBUG", INFERENCE_BACKEND="keras", WORKER_NICE="0")
        wait_ready(api.url)
        raw = dicom_bytes()
        resp = requests.post(
            api.url + "/v1/predictions",
            headers=AUTH,
            files={"file": ("study.dcm", raw)},
            timeout=30,
        )
        assert resp.status_code == 202
        assert result(api.url, resp.json()[0])["status"] == "done"
        bad = dicom_bytes(frames=2)  # a refused one is not logged with its headers either
        requests.post(
            api.url + "/v1/predictions", headers=AUTH, files={"file": ("cine.dcm", bad)}, timeout=30
        )
        # every key and value read by type: DUMP would compress long strings (LZF) and hide them
        dumped = redis_contents(server.url)
    finally:
        workers.stop_all()
        api.stop()
        server.stop()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    needles = [PATIENT_NAME, PATIENT_ID, "Doe^Jane", "19700101", "St Example Hospital"]
    for needle in needles:
        assert needle.encode() not in dumped
        assert needle.encode() not in on_disk  # logs, AOF, RDB, metrics files
    results.record(
        "security: DICOM identifiers in Redis, AOF and logs",
        occurrences=0,
        files_scanned=sum(1 for p in tmp_path.rglob("*") if p.is_file()),
    )


def test_redis_refuses_unauthenticated_clients(tmp_path):
    server = RedisServer(tmp_path / "r", password="s3cret-" + "p" * 20).start()
    try:
        anonymous = redis.Redis(port=server.port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.set("x", "1")
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()


# Every version a host or CI installs: dev.lock holds cpu.lock and web.lock (one set of
# versions across roles, tests/packaging/test_locks.py), gpu.lock adds TensorFlow's CUDA build.
AUDITED_LOCKS = ["requirements/dev.lock", "requirements/gpu.lock"]


def test_pip_audit_of_the_locked_dependencies(tmp_path):
    exe = shutil.which("pip-audit") or str(Path(ROOT / ".venv/bin/pip-audit"))
    if not Path(exe).exists():
        pytest.skip("pip-audit is not installed (make venv installs it)")
    out = tmp_path / "audit.json"
    proc = subprocess.run(
        [
            exe,
            *[arg for lock in AUDITED_LOCKS for arg in ("-r", str(ROOT / lock))],
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not out.exists():
        pytest.skip(f"pip-audit could not run here: {proc.stderr.strip()[-300:]}")
    report = json.loads(out.read_text())
    deps = report["dependencies"]
    skipped = [d for d in deps if d.get("skip_reason")]
    if len(skipped) == len(deps):
        pytest.skip(
            "pip-audit reached no vulnerability data: PyPI's per-version JSON API "
            "answers 404 from this network and OSV is unreachable; run "
            "`pip-audit -r requirements/dev.lock -r requirements/gpu.lock` where they are reachable"
        )
    allowed = json.loads((ROOT / "tests/reliability/audit_allowlist.json").read_text())
    found = {(d["name"], v["id"]) for d in deps for v in d.get("vulns", [])}
    unjustified = {f for f in found if f[1] not in allowed}
    assert not unjustified, f"vulnerable dependencies without a justification: {unjustified}"
