"""The UI against the real API (gunicorn on a free port, the test Redis). No mocked HTTP.

No inference worker runs here: where a test needs a finished result it finishes the job the way
a worker does, through the job protocol, which keeps these tests fast.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
import redis

from jobs.model import ServedModel
from jobs.training import TrainingProgress
from pneumonia_api.metadata import clean_jpeg
from tests.api.metadata_factory import pixels
from tests.web.conftest import AuthActions, csrf_token, web_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(redis_url, api_url):
    from pneumonia_web import create_app

    return create_app(web_config(redis_url, api_url, WORKLIST_PAGE_SIZE=2))


def upload(client, path, name=None):
    token = csrf_token(client, "/")
    with open(path, "rb") as fh:
        data = {"csrf_token": token, "file": (io.BytesIO(fh.read()), name or path.name)}
    return client.post("/upload", data=data, headers={"HX-Request": "true"})


def card_id(html: str) -> str:
    return re.search(r'id="card-([0-9a-f]{32})"', html).group(1)


def finish(queue, pid, label="Pneumonia", probability=0.87):
    """Do what an inference worker does with one job."""
    queue.ensure_group()  # the Redis was emptied for this test, group included
    (entry, job_id), *_ = queue.read("test-worker", count=100, block_ms=100)
    assert job_id == pid
    [record] = queue.start_batch([pid], "test-worker")
    record.label, record.probability = label, probability
    record.threshold, record.model_version = 0.5, "tiny-1"
    queue.finish_batch([(entry, record)])


def test_upload_gives_a_polling_card_then_a_final_one(alice, queue, fullres_xrays):
    resp = upload(alice, fullres_xrays[0])
    html = resp.get_data(as_text=True)
    assert resp.status_code == 202 and "<html" not in html
    pid = card_id(html)
    assert 'hx-trigger="every' in html and "Queued" in html and "alice" in html
    assert queue.get(pid).uploader == "alice"

    finish(queue, pid)
    final = alice.get(f"/results/{pid}/card", headers={"HX-Request": "true"})
    text = final.get_data(as_text=True)
    assert "hx-trigger" not in text  # polling stops once the result is final
    assert "Pneumonia" in text and "87.0 %" in text and "Threshold 50.0 %" in text
    assert "tiny-1" in text and "Research use only" in text and 'href="/model"' in text


def test_wrong_type_is_refused_inline_with_what_to_do(alice):
    token = csrf_token(alice, "/")
    data = {"csrf_token": token, "file": (io.BytesIO(b"just some text"), "notes.png")}
    resp = alice.post("/upload", data=data, headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 415 and "<html" not in html
    assert "notes.png" in html and "Not uploaded" in html and 'role="alert"' in html


def test_no_js_form_uploads_several_files_at_once(alice, fullres_xrays):
    token = csrf_token(alice, "/")
    files = []
    for path in fullres_xrays[:2]:
        files.append((io.BytesIO(path.read_bytes()), path.name))
    resp = alice.post("/upload", data={"csrf_token": token, "file": files})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 202 and "<html" in html
    assert html.count('data-card data-status="queued"') == 2


def test_result_page_shows_everything_and_is_audited(
    alice, client, queue, fullres_xrays, make_user
):
    pid = card_id(upload(alice, fullres_xrays[1]).get_data(as_text=True))
    finish(queue, pid, label="Normal", probability=0.12)
    html = alice.get(f"/results/{pid}").get_data(as_text=True)
    for text in ("Normal", "12.0 %", "50.0 %", "tiny-1", "alice", fullres_xrays[1].name):
        assert text in html
    assert "Research use only" in html and f"/results/{pid}/image" in html

    AuthActions(client).logout()
    make_user("root", role="admin")
    AuthActions(client).login("root")
    log = client.get("/admin/audit").get_data(as_text=True)
    assert "action-view" in log and "action-upload" in log and pid[:8] in log


def test_image_and_thumbnail_are_proxied(alice, fullres_xrays):
    pid = card_id(upload(alice, fullres_xrays[0]).get_data(as_text=True))
    full = alice.get(f"/results/{pid}/image")
    thumb = alice.get(f"/results/{pid}/image?thumb=1")
    assert full.status_code == 200 and full.mimetype == "image/jpeg"
    original = fullres_xrays[0].read_bytes()
    assert full.data == clean_jpeg(original)  # the clean copy: metadata segments dropped
    assert (pixels(full.data) == pixels(original)).all()  # and not a pixel changed
    assert thumb.mimetype == "image/jpeg" and len(thumb.data) < len(full.data) / 4
    assert "private" in full.headers["Cache-Control"]


def test_unknown_result_is_a_404(alice):
    assert alice.get("/results/" + "0" * 32).status_code == 404


def test_worklist_most_suspicious_first_paginated_and_filtered(alice, queue, fullres_xrays):
    ids = []
    for path, prob in zip(fullres_xrays[:3], (0.9, 0.2, 0.6), strict=True):
        pid = card_id(upload(alice, path).get_data(as_text=True))
        finish(queue, pid, label="Pneumonia" if prob > 0.5 else "Normal", probability=prob)
        ids.append(pid)
    page1 = alice.get("/worklist").get_data(as_text=True)
    assert page1.index(ids[0]) < page1.index(ids[2])  # 90 % before 60 %, 2 per page here
    assert ids[1] not in page1 and "Next →" in page1
    assert "3</strong> unread" in page1 and 'class="nav-count"' in page1
    assert page1.count("second-look-badge") == 2  # the hint's sample and the 60 % row
    later = re.search(r'href="(/worklist\?offset=2[^"]*)"', page1).group(1).replace("&amp;", "&")
    page2 = alice.get(later).get_data(as_text=True)
    assert ids[1] in page2 and ids[0] not in page2 and "← Previous" in page2

    newest = alice.get("/worklist?sort=newest").get_data(as_text=True)
    assert newest.index(ids[2]) < newest.index(ids[1])
    normal = alice.get("/worklist?label=Normal").get_data(as_text=True)
    assert ids[1] in normal and ids[0] not in normal and ids[2] not in normal
    band = alice.get("/worklist?show=second_look").get_data(as_text=True)
    assert ids[2] in band and ids[0] not in band and ids[1] not in band
    nobody = alice.get("/worklist?uploader=bob").get_data(as_text=True)
    assert "No results match these filters" in nobody
    long_ago = alice.get("/worklist?day=2001-01-01").get_data(as_text=True)
    assert "No results match these filters" in long_ago
    today = alice.get(f"/worklist?day={datetime.now(UTC).date().isoformat()}&status=done")
    assert ids[0] in today.get_data(as_text=True)


def test_verdict_is_recorded_audited_and_shown(alice, client, queue, fullres_xrays, make_user):
    pid = card_id(upload(alice, fullres_xrays[0]).get_data(as_text=True))
    finish(queue, pid, label="Pneumonia", probability=0.81)
    page = alice.get(f"/results/{pid}").get_data(as_text=True)
    assert "Reader's verdict" in page and "Agree with the model (Pneumonia)" in page
    token = csrf_token(alice, f"/results/{pid}")

    missing = alice.post(f"/results/{pid}/verdict", data={"csrf_token": token},
                         headers={"HX-Request": "true"})  # fmt: skip
    assert missing.status_code == 400 and "Choose your read first" in missing.get_data(True)

    data = {"csrf_token": token, "choice": "Normal", "note": "vessels, not consolidation"}
    resp = alice.post(f"/results/{pid}/verdict", data=data, headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert "The reader reads <strong>Normal</strong>; the model said Pneumonia." in html
    assert "vessels, not consolidation" in html and "alice" in html

    worklist = alice.get("/worklist").get_data(as_text=True)
    assert "Reader: Normal" in worklist and "0</strong> unread" in worklist
    assert 'class="nav-count"' not in worklist

    no_js = alice.post(f"/results/{pid}/verdict", data={**data, "choice": "agree"})
    assert no_js.status_code == 302 and no_js.headers["Location"].endswith(
        f"/results/{pid}#verdict"
    )
    assert "The reader agrees with the model" in alice.get(f"/results/{pid}").get_data(True)

    AuthActions(client).logout()
    make_user("root", role="admin")
    AuthActions(client).login("root")
    log = client.get("/admin/audit?action=verdict").get_data(as_text=True)
    assert log.count("action-verdict") == 2 and "Normal" in log and "agree" in log


def test_verdict_before_the_result_says_to_wait(alice, fullres_xrays):
    pid = card_id(upload(alice, fullres_xrays[0]).get_data(as_text=True))
    page = alice.get(f"/results/{pid}").get_data(as_text=True)
    assert "once the model's result is in" in page and "Record my read" not in page
    token = csrf_token(alice, "/")
    resp = alice.post(f"/results/{pid}/verdict", data={"csrf_token": token, "choice": "agree"},
                      headers={"HX-Request": "true"})  # fmt: skip
    assert resp.status_code == 409 and "wait for it" in resp.get_data(as_text=True)


def test_worklist_htmx_gets_only_the_table(alice, fullres_xrays):
    upload(alice, fullres_xrays[0])
    headers = {"HX-Request": "true", "HX-Target": "worklist-table"}
    partial = alice.get("/worklist?label=", headers=headers).get_data(as_text=True)
    assert "<html" not in partial and "<table" in partial
    assert "<html" in alice.get("/worklist").get_data(as_text=True)


def test_model_page_without_and_with_a_card(alice, queue):
    assert "No model is serving yet" in alice.get("/model").get_data(as_text=True)
    ServedModel(queue.r).publish(
        {
            "name": "ResNet50 pneumonia classifier",
            "version": "v7",
            "threshold": 0.42,
            "training_data": {
                "name": "Kermany chest X-rays",
                "credit": "Kermany et al., Cell 2018, CC BY 4.0",
                "splits": {"train": {"NORMAL": 1000, "PNEUMONIA": 3000}},
            },
            "metrics": {
                "roc_auc": 0.97,
                "sensitivity": 0.95,
                "n": 525,
                "threshold_target_sensitivity": 0.95,
            },
            "test_metrics": {
                "roc_auc": 0.955,
                "n": 523,
                "confusion_matrix": [[90, 10], [5, 95]],
            },
        }
    )
    TrainingProgress(queue.r).set(
        {"phase": "fine-tune", "epoch": 2, "epochs": 5, "ratio": 0.4, "eta_seconds": 300}
    )
    html = alice.get("/model").get_data(as_text=True)
    for text in (
        "ResNet50 pneumonia classifier",
        "v7",
        "42.0 %",
        "Kermany et al., Cell 2018",
        "97.0 %",
        "95.0 %",
        "95.5 %",  # the test column
        "validation 525 images, test 523 images",
        "for 95 % sensitivity",
        "Confusion matrix, test",
        "epoch 2 of 5",
        "About 5 minutes left",
    ):
        assert text in html


def test_readyz_follows_the_api(client):
    resp = client.get("/readyz")
    assert resp.status_code == 503  # no worker serves a model here
    assert resp.get_json()["checks"] == {"web_redis": True, "api": False}


def test_dicom_upload_shows_as_a_png_image(alice):
    from tests.api.dicom_factory import dicom_bytes

    token = csrf_token(alice, "/")
    data = {"csrf_token": token, "file": (io.BytesIO(dicom_bytes()), "chest.dcm")}
    resp = alice.post("/upload", data=data, headers={"HX-Request": "true"})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    pid = card_id(resp.get_data(as_text=True))
    image = alice.get(f"/results/{pid}/image")
    assert image.mimetype == "image/png" and image.data.startswith(b"\x89PNG")


def test_viewing_a_full_image_is_audited(alice, redis_url, fullres_xrays):
    pid = card_id(upload(alice, fullres_xrays[0]).get_data(as_text=True))
    alice.get(f"/results/{pid}/image?thumb=1")
    assert alice.get(f"/results/{pid}/image").status_code == 200
    web_db = redis_url.rsplit("/", 1)[0] + "/1"  # the UI's own database
    log = redis.Redis.from_url(web_db, decode_responses=True).xrange("pneumonia-web:audit")
    views = [f for _, f in log if f["action"] == "view_image"]
    assert [(f["user"], f["prediction_id"]) for f in views] == [("alice", pid)]


def test_no_url_of_a_card_carries_the_file_name(alice, fullres_xrays):
    html = upload(alice, fullres_xrays[0], name="DOE_JOHN_MRN12345.jpeg").get_data(as_text=True)
    assert "DOE_JOHN_MRN12345.jpeg" in html  # shown on the card, for the clinician
    urls = re.findall(r'(?:hx-get|href|src|action)="([^"]*)"', html)
    assert urls and not [u for u in urls if "DOE" in u]


def test_a_retried_upload_with_its_idempotency_key_is_one_job(alice, fullres_xrays, queue):
    """The upload page sends a key per file; a retry after a cut connection returns the job
    the first attempt created instead of queueing the X-ray twice."""
    token = csrf_token(alice, "/")
    data = fullres_xrays[0].read_bytes()
    ids = []
    for _ in range(2):
        resp = alice.post(
            "/upload",
            data={"csrf_token": token, "file": (io.BytesIO(data), fullres_xrays[0].name)},
            headers={"HX-Request": "true", "Idempotency-Key": "0b7e4c1e-retry-test"},
        )
        assert resp.status_code == 202
        ids.append(card_id(resp.get_data(as_text=True)))
    assert ids[0] == ids[1]
    assert queue.r.xlen(queue.keys.stream) == 1
