"""The reader's verdict and the triaged worklist, through the real app and a real Redis.

No worker runs: a test finishes a job the way a worker does, through the job contract.
"""

from __future__ import annotations

import redis

from jobs.queue import JobQueue

from .conftest import jpeg_bytes, png_bytes, upload


def finish(redis_client, pid: str, label: str, probability: float, version: str = "v1"):
    """Do what an inference worker does with one job."""
    queue = JobQueue(redis_client)
    entries = queue.read("test-worker", count=100, block_ms=100)
    entry = next(e for e, job in entries if job == pid)
    [record] = queue.start_batch([pid], "test-worker")
    record.label, record.probability, record.threshold = label, probability, 0.5
    record.model_version = version
    queue.finish_batch([(entry, record)])


def new(client, auth, seed: int) -> str:
    return upload(client, auth, (png_bytes(seed=seed), f"{seed}.png")).get_json()[0]["id"]


def put(client, auth, pid, reader="dr.ada", **body):
    headers = {**auth, "X-Reader": reader}
    return client.put(f"/v1/predictions/{pid}/verdict", json=body, headers=headers)


def test_verdict_is_recorded_compared_and_shown_with_the_result(client, auth, redis_client):
    pid = new(client, auth, 1)
    early = put(client, auth, pid, choice="agree")
    assert early.status_code == 409 and "wait" in early.get_json()["error"]["message"]
    finish(redis_client, pid, "Pneumonia", 0.83)
    assert client.get(f"/v1/predictions/{pid}", headers=auth).get_json()["verdict"] is None

    agreed = put(client, auth, pid, choice="agree", note="  consolidation   right lower lobe ")
    assert agreed.status_code == 200
    body = agreed.get_json()
    assert body["reader_label"] == "Pneumonia" and body["agreement"] == "agree"
    assert body["reader"] == "dr.ada" and body["note"] == "consolidation right lower lobe"
    assert body["model_version"] == "v1"

    changed = put(client, auth, pid, reader="dr.bob", choice="Normal").get_json()
    assert changed["agreement"] == "disagree" and changed["reader"] == "dr.bob"
    shown = client.get(f"/v1/predictions/{pid}", headers=auth).get_json()["verdict"]
    assert shown["reader_label"] == "Normal" and shown["reader"] == "dr.bob"

    # replacing a verdict moves its count: one verdict, one disagreement, for version v1
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'pneumonia_reader_verdicts{agreement="disagree",model_version="v1"} 1.0' in metrics
    assert 'pneumonia_reader_verdicts{agreement="agree",model_version="v1"} 0.0' in metrics
    assert 'pneumonia_reader_agreement_ratio{model_version="v1"} 0.0' in metrics


def test_bad_verdicts_get_clear_errors(client, auth, redis_client):
    pid = new(client, auth, 2)
    finish(redis_client, pid, "Normal", 0.1)
    wrong = put(client, auth, pid, choice="maybe")
    assert wrong.status_code == 400 and "agree, Pneumonia" in wrong.get_json()["error"]["message"]
    not_json = client.put(f"/v1/predictions/{pid}/verdict", data="agree", headers=auth)
    assert not_json.status_code == 400 and "JSON" in not_json.get_json()["error"]["message"]
    missing = put(client, auth, "0" * 32, choice="agree")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    no_token = client.put(f"/v1/predictions/{pid}/verdict", json={"choice": "agree"})
    assert no_token.status_code == 401
    assert client.get(f"/v1/predictions/{pid}/verdict", headers=auth).status_code == 404


def test_agreement_ratio_per_model_version(client, auth, redis_client):
    for seed, (label, choice, version) in enumerate(
        [
            ("Pneumonia", "agree", "v1"),
            ("Normal", "agree", "v1"),
            ("Normal", "Pneumonia", "v1"),
            ("Normal", "not_assessable", "v1"),
            ("Pneumonia", "Normal", "v2"),
        ]
    ):
        pid = new(client, auth, 10 + seed)
        finish(redis_client, pid, label, 0.6 if label == "Pneumonia" else 0.2, version)
        assert put(client, auth, pid, choice=choice).status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'pneumonia_reader_agreement_ratio{model_version="v1"} 0.6666666666666666' in metrics
    assert 'pneumonia_reader_agreement_ratio{model_version="v2"} 0.0' in metrics
    line = 'pneumonia_reader_verdicts{agreement="not_assessable",model_version="v1"} 1.0'
    assert line in metrics


def test_worklist_sorts_by_suspicion_flags_second_look_and_counts_unread(
    client, auth, redis_client
):
    probs = {"low": 0.05, "near": 0.55, "high": 0.97, "mid": 0.75}
    ids = {}
    for seed, (name, prob) in enumerate(probs.items()):
        ids[name] = new(client, auth, 20 + seed)
        finish(redis_client, ids[name], "Pneumonia" if prob >= 0.5 else "Normal", prob)
    ids["queued"] = upload(client, auth, (jpeg_bytes(seed=3), "q.jpeg")).get_json()[0]["id"]

    page = client.get("/v1/worklist", headers=auth).get_json()
    order = [i["id"] for i in page["items"]]
    assert order == [ids[n] for n in ("high", "mid", "near", "low", "queued")]
    assert [i["second_look"] for i in page["items"]] == [False, False, True, False, False]
    assert page["unread"] == 4 and page["total"] == 5

    put(client, auth, ids["high"], choice="agree")
    assert client.get("/v1/worklist/unread", headers=auth).get_json()["unread"] == 3
    unread = client.get("/v1/worklist?read=unread&limit=2", headers=auth).get_json()
    assert [i["id"] for i in unread["items"]] == [ids["mid"], ids["near"]]
    assert unread["next_offset"] == 2 and unread["total"] == 3
    rest = client.get("/v1/worklist?read=unread&limit=2&offset=2", headers=auth).get_json()
    assert [i["id"] for i in rest["items"]] == [ids["low"]] and rest["next_offset"] is None
    read = client.get("/v1/worklist?read=read", headers=auth).get_json()["items"]
    assert [i["verdict"]["reader"] for i in read] == ["dr.ada"]

    band = client.get("/v1/worklist?second_look=1", headers=auth).get_json()["items"]
    assert [i["id"] for i in band] == [ids["near"]]
    queued = client.get("/v1/worklist?status=queued", headers=auth).get_json()["items"]
    assert [i["id"] for i in queued] == [ids["queued"]]
    newest = client.get("/v1/worklist?sort=newest", headers=auth).get_json()["items"]
    assert newest[0]["id"] == ids["queued"]
    future = client.get("/v1/worklist?since=99999999999999", headers=auth).get_json()
    assert future["items"] == [] and future["unread"] == 0
    bad = client.get("/v1/worklist?status=lost", headers=auth)
    assert (
        bad.status_code == 400 and "'status' must be one of" in bad.get_json()["error"]["message"]
    )


def test_verdicts_expire_with_their_prediction(app, client, auth, redis_client):
    pid = new(client, auth, 40)
    finish(redis_client, pid, "Normal", 0.2)
    put(client, auth, pid, choice="agree")
    keys = app.extensions["job_verdicts"].keys
    ttl = redis.Redis(connection_pool=redis_client.connection_pool).ttl(keys.verdict(pid))
    assert 0 < ttl <= app.config["RESULT_RETENTION_SECONDS"]
