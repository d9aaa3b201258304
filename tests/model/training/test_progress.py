"""Training progress reaches Redis and the Prometheus textfile, and never kills training."""

from __future__ import annotations

from devstack.processes import free_port
from jobs.training import TrainingProgress
from model.training.progress import GAUGES, ProgressCallback, Reporter


def test_progress_goes_to_redis(redis_client, redis_url):
    reporter = Reporter(redis_url=redis_url, textfile="")
    reporter.update(phase="training", epoch=2, epochs=10, ratio=0.2, message="epoch 2/10")
    got = TrainingProgress(redis_client).get()
    assert got["phase"] == "training" and got["epoch"] == "2" and got["ratio"] == "0.2"
    assert got["message"] == "epoch 2/10"


def test_redis_down_does_not_stop_training(tmp_path, caplog):
    reporter = Reporter(redis_url=f"redis://127.0.0.1:{free_port()}/0", textfile="")
    for epoch in range(3):
        reporter.update(phase="training", epoch=epoch)  # must not raise
    assert sum("unavailable" in r.message for r in caplog.records) == 1  # said once


def test_textfile_has_every_gauge_and_is_replaced_atomically(tmp_path):
    path = tmp_path / "node" / "training.prom"
    reporter = Reporter(redis_url="", textfile=str(path))
    reporter.update(phase="training", epoch=3, ratio=0.5, val_auc=0.91, images_per_second=12.5)
    text = path.read_text()
    for name in GAUGES:
        assert f"# TYPE {name} gauge" in text
    assert "pneumonia_training_val_auc 0.91\n" in text
    assert "pneumonia_training_progress_ratio 0.5\n" in text
    assert [p.name for p in path.parent.iterdir()] == ["training.prom"]  # no temp files left


def test_unwritable_textfile_is_ignored(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    Reporter(redis_url="", textfile=str(blocker / "x.prom")).update(epoch=1)


def test_callback_reports_ratio_eta_and_throughput(tmp_path):
    path = tmp_path / "t.prom"
    reporter = Reporter(redis_url="", textfile=str(path))
    callback = ProgressCallback(reporter, total_epochs=4, n_train=100)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_epoch_end(0, {"val_auc": 0.8})
    state = reporter.state
    assert state["epoch"] == 1 and state["ratio"] == 0.25 and state["val_auc"] == 0.8
    assert state["eta_seconds"] >= 0 and state["images_per_second"] > 0
    assert "val AUC 0.800" in state["message"]


def test_callback_reports_within_an_epoch(tmp_path):
    reporter = Reporter(redis_url="", textfile="")
    callback = ProgressCallback(reporter, total_epochs=2, n_train=100)
    callback.set_params({"steps": 10, "epochs": 2})
    callback.batch_interval = 0.0
    callback.on_train_begin()
    callback.on_epoch_begin(1)
    callback.on_train_batch_end(4)
    assert reporter.state["ratio"] == 0.75  # (1 epoch + 5/10 steps) / 2 epochs
    assert reporter.state["message"] == "epoch 2/2, step 5/10"
