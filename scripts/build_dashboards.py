"""Write the Grafana dashboards in monitoring/grafana/dashboards/ from one readable list.

``python scripts/build_dashboards.py`` regenerates service.json, hosts.json and training.json;
tests/monitoring checks the committed files match, so edit here, not in the JSON. Every panel
reads the provisioned Prometheus datasource (uid ``prometheus``); uids are fixed so links
and bookmarks survive a re-provisioning.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "monitoring" / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"
ROUTE = "{{route}}"
NODE_FS = 'fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs"'


def q(expr: str, legend: str = "", instant: bool = False) -> dict:
    """One Prometheus query of a panel."""
    target = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        target.update(instant=True, range=False, format="table")
    else:
        target["range"] = True
    return target


def panel(kind: str, title: str, desc: str, targets: list[dict], unit: str = "short", **opts):
    """A panel of ``kind`` (timeseries, stat, gauge, table); position is set by layout()."""
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": targets,
        "options": opts or {},
    }
    for i, target in enumerate(targets):
        target["refId"] = chr(ord("A") + i)
    if kind == "timeseries":
        p["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
            **opts,
        }
    elif kind == "table":
        # one row per worker: join the queries on instance, hide the timestamps
        p["transformations"] = [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
        ]
    elif kind in ("stat", "gauge"):
        p["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            **opts,
        }
    return p


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(items: list[dict]) -> list[dict]:
    """Rows span the width; panels flow left to right, 3 per line (stats 4 or 6 per line)."""
    out, x, y, h_line = [], 0, 0, 0
    for i, item in enumerate(items, start=1):
        item["id"] = i
        if item["type"] == "row":
            y += h_line
            x, h_line = 0, 0
            item["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
        else:
            w, h = (6, 4) if item["type"] in ("stat", "gauge") else (8, 8)
            if x + w > 24:
                x, y = 0, y + h_line
                h_line = 0
            item["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            x += w
            h_line = max(h_line, h)
        out.append(item)
    return out


def var(name: str, label: str, query: str) -> dict:
    """A multi-value query variable with an All option (queries use =~"$name")."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": {},
        "hide": 0,
    }


def dashboard(uid: str, title: str, desc: str, items: list[dict], variables=()) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["pneumonia"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["pneumonia"], "asDropdown": False, "title": "Pneumonia"}
        ],
        "templating": {"list": list(variables)},
        "panels": layout(items),
    }


def quantiles(metric: str, by: str = "", sel: str = "") -> list[dict]:
    """p50 and p95 of a histogram, optionally per label ``by``."""
    group = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return [
        q(
            f"histogram_quantile({p}, sum by ({group}) (rate({metric}_bucket{sel}[{RI}])))",
            f"{legend}p{int(p * 100)}",
        )
        for p in (0.5, 0.95)
    ]


def service() -> dict:
    """RED per tier, the queue, inference and the model."""
    items = [
        row("Overview"),
        panel(
            "stat",
            "Targets up per tier",
            "Scrape targets answering, per job. A tier at 0 is down or not discovered.",
            [q('sum by (job) (up{job=~"api|ui|worker|redis|nginx"})', "{{job}}")],
            colorMode="value",
            graphMode="none",
            textMode="value_and_name",
        ),
        panel(
            "stat",
            "Live model version",
            "Model versions served by the workers right now (count of workers per version).",
            [q("count by (version) (pneumonia_worker_model_info == 1)", "{{version}}")],
            colorMode="none",
            graphMode="none",
            textMode="name",
        ),
        panel(
            "stat",
            "Workers by state",
            "Workers with a fresh heartbeat in Redis, by state (ready serves predictions).",
            [q("max by (state) (pneumonia_workers_alive)", "{{state}}")],
            colorMode="value",
            graphMode="none",
            textMode="value_and_name",
        ),
        panel(
            "stat",
            "Predictions in the last hour",
            "Results written by every worker in the last hour.",
            [q("sum(increase(pneumonia_worker_predictions_total[1h]))", "predictions")],
            graphMode="area",
        ),
        row("API: rate, errors, duration"),
        panel(
            "timeseries",
            "API requests by route",
            "Requests per second answered by the API, per route.",
            [q(f'sum by (route) (rate(pneumonia_api_requests_total{{job="api"}}[{RI}]))', ROUTE)],
            "reqps",
        ),
        panel(
            "timeseries",
            "API errors",
            "Share of 5xx (recording rule, 5m) and 4xx/5xx per second by status.",
            [
                q("job:pneumonia_api_request_errors:ratio_rate5m", "5xx ratio"),
                q(
                    "sum by (status) "
                    f'(rate(pneumonia_api_requests_total{{status=~"[45].."}}[{RI}]))',
                    "{{status}}/s",
                ),
            ],
            "short",
        ),
        panel(
            "timeseries",
            "API latency by route",
            "Median and 95th percentile of request duration, per route.",
            quantiles("pneumonia_api_request_duration_seconds", "route", '{job="api"}'),
            "s",
        ),
        panel(
            "timeseries",
            "Uploads: accepted, cache hits, rejected",
            "Images accepted for prediction, answered from the result cache, refused by reason.",
            [
                q(f"sum(rate(pneumonia_api_predictions_accepted_total[{RI}]))", "accepted"),
                q(f"sum(rate(pneumonia_api_cache_hits_total[{RI}]))", "cache hits"),
                q(
                    f"sum by (reason) (rate(pneumonia_api_uploads_rejected_total[{RI}]))",
                    "rejected: {{reason}}",
                ),
            ],
            "ops",
        ),
        panel(
            "timeseries",
            "Upload size",
            "Median and 95th percentile size of uploaded files.",
            quantiles("pneumonia_api_upload_size_bytes"),
            "bytes",
        ),
        row("UI: rate, errors, duration"),
        panel(
            "timeseries",
            "UI requests by route",
            "Requests per second answered by the clinician UI, per route.",
            [q(f'sum by (route) (rate(pneumonia_web_requests_total{{job="ui"}}[{RI}]))', ROUTE)],
            "reqps",
        ),
        panel(
            "timeseries",
            "UI errors and login failures",
            "Share of 5xx (5m) and failed logins per second (bursts: password guessing).",
            [
                q("job:pneumonia_web_request_errors:ratio_rate5m", "5xx ratio"),
                q(f"sum(rate(pneumonia_web_login_failures_total[{RI}]))", "login failures/s"),
            ],
        ),
        panel(
            "timeseries",
            "UI latency by route",
            "Median and 95th percentile of UI request duration, per route.",
            quantiles("pneumonia_web_request_duration_seconds", "route", '{job="ui"}'),
            "s",
        ),
        row("nginx"),
        panel(
            "timeseries",
            "nginx requests",
            "Requests per second handled by nginx (stub_status through nginx-prometheus-exporter).",
            [q(f"sum by (instance) (rate(nginx_http_requests_total[{RI}]))", "{{instance}}")],
            "reqps",
        ),
        panel(
            "timeseries",
            "nginx connections",
            "Open client connections: active, and idle keep-alive (waiting).",
            [
                q("sum by (instance) (nginx_connections_active)", "active {{instance}}"),
                q("sum by (instance) (nginx_connections_waiting)", "waiting {{instance}}"),
            ],
        ),
        panel(
            "stat",
            "nginx up",
            "1 when the exporter reads nginx's stub_status.",
            [q("nginx_up", "{{instance}}")],
            colorMode="value",
            graphMode="none",
        ),
        row("Queue"),
        panel(
            "timeseries",
            "Queue depth and pending jobs",
            "Jobs waiting for a worker, and jobs a worker holds but has not finished.",
            [
                q("max(pneumonia_queue_depth)", "waiting"),
                q("max(pneumonia_queue_pending)", "pending"),
            ],
        ),
        panel(
            "timeseries",
            "Oldest pending job age",
            "How long the oldest unfinished job has been held by a worker.",
            [q("max(pneumonia_queue_oldest_pending_age_seconds)", "oldest pending")],
            "s",
        ),
        panel(
            "timeseries",
            "Dead-letter jobs",
            "Jobs given up after every retry (they ended failed).",
            [q("max(pneumonia_queue_dead_letter_jobs)", "dead letters")],
        ),
        panel(
            "timeseries",
            "Redis memory and clients",
            "Memory used by Redis (images, results, stream) and connected clients.",
            [
                q("sum by (instance) (redis_memory_used_bytes)", "memory {{instance}}"),
                q("sum by (instance) (redis_connected_clients)", "clients {{instance}}"),
            ],
            "bytes",
        ),
        row("Inference"),
        panel(
            "timeseries",
            "Images processed",
            "Images run through the model per second, per worker host.",
            [
                q(
                    f"sum by (instance) (rate(pneumonia_worker_images_processed_total[{RI}]))",
                    "{{instance}}",
                )
            ],
            "ops",
        ),
        panel(
            "timeseries",
            "Inference latency",
            "Duration of one batched model call, median and 95th percentile.",
            quantiles("pneumonia_worker_inference_duration_seconds"),
            "s",
        ),
        panel(
            "timeseries",
            "Batch size",
            "Images per model call: mean and 95th percentile (dynamic batching at work).",
            [
                q(
                    f"sum(rate(pneumonia_worker_batch_size_sum[{RI}]))"
                    f" / sum(rate(pneumonia_worker_batch_size_count[{RI}]))",
                    "mean",
                ),
                q(
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(pneumonia_worker_batch_size_bucket[{RI}])))",
                    "p95",
                ),
            ],
        ),
        panel(
            "timeseries",
            "Upload to result latency",
            "From upload to result written, as doctors wait for it: median and p95.",
            quantiles("pneumonia_worker_job_latency_seconds"),
            "s",
        ),
        panel(
            "timeseries",
            "Worker failures by reason",
            "Failed attempts per second (preprocess, inference, expired image, retries spent).",
            [
                q(
                    f"sum by (reason) (rate(pneumonia_worker_failures_total[{RI}]))",
                    "{{reason}}",
                )
            ],
            "ops",
        ),
        panel(
            "timeseries",
            "Worker heartbeat age",
            "Seconds since each worker's loop last beat; a growing line is a stuck worker.",
            [q("time() - pneumonia_worker_heartbeat_timestamp_seconds", "{{instance}}")],
            "s",
        ),
        row("Model"),
        panel(
            "timeseries",
            "Predictions by label",
            "Results per second, by predicted label.",
            [q(f"sum by (label) (rate(pneumonia_worker_predictions_total[{RI}]))", "{{label}}")],
            "ops",
        ),
        panel(
            "timeseries",
            "Label share over the last hour",
            "Share of each label among the last hour's results (drift watch; alert above 95%).",
            [q("label:pneumonia_worker_predictions:ratio_increase1h", "{{label}}")],
            "percentunit",
        ),
        panel(
            "timeseries",
            "Reader agreement by model version",
            "Share of the last day's readers' labels (Pneumonia/Normal) that agree with the model, "
            "per model version; not assessable reads aside. Alert below 80% over 20+ reads.",
            [
                q("model_version:pneumonia_reader_agreement:ratio1d", "{{model_version}}"),
            ],
            "percentunit",
        ),
        panel(
            "timeseries",
            "Readers' verdicts per day",
            "Verdicts recorded over the last day, by model version and agreement.",
            [
                q(
                    "sum by (model_version, agreement) "
                    "(model_version:pneumonia_reader_verdicts:delta1d)",
                    "{{model_version}} {{agreement}}",
                )
            ],
        ),
        panel(
            "table",
            "Model version per worker",
            "Which model version each worker serves, and how long it took to load.",
            [
                q("max by (instance, version) (pneumonia_worker_model_info)", instant=True),
                q("max by (instance) (pneumonia_worker_model_load_seconds)", instant=True),
            ],
            "short",
            showHeader=True,
        ),
    ]
    return dashboard(
        "pneumonia-service",
        "Service",
        "Per tier: is it up, how fast, does the queue move, what the model predicts.",
        items,
    )


def hosts() -> dict:
    """USE from node_exporter, per Role."""
    sel = 'role=~"$role", instance=~"$instance"'
    items = [
        row("Availability"),
        panel(
            "stat",
            "Hosts up by role",
            "node_exporter targets answering, per Role tag.",
            [q('sum by (role) (up{job="node"})', "{{role}}")],
            colorMode="value",
            graphMode="none",
            textMode="value_and_name",
        ),
        row("CPU"),
        panel(
            "timeseries",
            "CPU utilisation",
            "Share of CPU time not idle, per host.",
            [q(f"instance:node_cpu_utilisation:ratio_rate5m{{{sel}}}", "{{instance}} ({{role}})")],
            "percentunit",
        ),
        panel(
            "timeseries",
            "CPU saturation",
            "1-minute load average per CPU; above 1 means runnable work waits.",
            [q(f"instance:node_load1_per_cpu:ratio{{{sel}}}", "{{instance}} ({{role}})")],
        ),
        row("Memory"),
        panel(
            "timeseries",
            "Memory utilisation",
            "Share of memory not available to new work.",
            [q(f"instance:node_memory_utilisation:ratio{{{sel}}}", "{{instance}} ({{role}})")],
            "percentunit",
        ),
        panel(
            "timeseries",
            "Memory saturation",
            "Major page faults per second: memory is short when this climbs.",
            [q(f"rate(node_vmstat_pgmajfault{{{sel}}}[{RI}])", "{{instance}} ({{role}})")],
            "ops",
        ),
        row("Disk"),
        panel(
            "timeseries",
            "Disk space used",
            "Share of each filesystem in use.",
            [
                q(
                    f"1 - node_filesystem_avail_bytes{{{sel}, {NODE_FS}}}"
                    f" / node_filesystem_size_bytes{{{sel}, {NODE_FS}}}",
                    "{{instance}} {{mountpoint}}",
                )
            ],
            "percentunit",
        ),
        panel(
            "timeseries",
            "Disk I/O utilisation",
            "Share of time each device was busy.",
            [
                q(
                    f"rate(node_disk_io_time_seconds_total{{{sel}}}[{RI}])",
                    "{{instance}} {{device}}",
                )
            ],
            "percentunit",
        ),
        panel(
            "timeseries",
            "Disk I/O saturation",
            "Average I/O queue length per device (weighted time in I/O).",
            [
                q(
                    f"rate(node_disk_io_time_weighted_seconds_total{{{sel}}}[{RI}])",
                    "{{instance}} {{device}}",
                )
            ],
        ),
        row("Network"),
        panel(
            "timeseries",
            "Network throughput",
            "Bytes per second received and sent, per host (loopback excluded).",
            [
                q(
                    "sum by (instance) "
                    f'(rate(node_network_receive_bytes_total{{{sel}, device!="lo"}}[{RI}]))',
                    "in {{instance}}",
                ),
                q(
                    "sum by (instance) "
                    f'(rate(node_network_transmit_bytes_total{{{sel}, device!="lo"}}[{RI}]))',
                    "out {{instance}}",
                ),
            ],
            "Bps",
        ),
        panel(
            "timeseries",
            "Network errors and drops",
            "Receive and transmit errors and drops per second (should stay at 0).",
            [
                q(
                    f"sum by (instance) (rate(node_network_receive_errs_total{{{sel}}}[{RI}])"
                    f" + rate(node_network_transmit_errs_total{{{sel}}}[{RI}]))",
                    "errors {{instance}}",
                ),
                q(
                    f"sum by (instance) (rate(node_network_receive_drop_total{{{sel}}}[{RI}])"
                    f" + rate(node_network_transmit_drop_total{{{sel}}}[{RI}]))",
                    "drops {{instance}}",
                ),
            ],
            "ops",
        ),
    ]
    return dashboard(
        "pneumonia-hosts",
        "Hosts",
        "Utilisation, saturation and errors of every host, by Role tag (node_exporter).",
        items,
        [
            var("role", "Role", "label_values(node_uname_info, role)"),
            var("instance", "Instance", 'label_values(node_uname_info{role=~"$role"}, instance)'),
        ],
    )


def training() -> dict:
    """The GPU box: training progress (textfile gauges) and GPU use (dcgm-exporter)."""
    sel = 'instance=~"$instance"'
    items = [
        row("Training run"),
        panel(
            "gauge",
            "Progress",
            "Share of the planned epochs done by the running training.",
            [q(f"pneumonia_training_progress_ratio{{{sel}}}", "{{instance}}")],
            "percentunit",
        ),
        panel(
            "stat",
            "Epoch",
            "Current epoch of the running training.",
            [q(f"pneumonia_training_epoch{{{sel}}}", "{{instance}}")],
            colorMode="none",
            graphMode="none",
        ),
        panel(
            "stat",
            "Validation AUC",
            "ROC AUC on the validation set after the last epoch.",
            [q(f"pneumonia_training_val_auc{{{sel}}}", "{{instance}}")],
            colorMode="value",
            graphMode="area",
        ),
        panel(
            "timeseries",
            "Training throughput",
            "Images per second through training.",
            [q(f"pneumonia_training_images_per_second{{{sel}}}", "{{instance}}")],
            "short",
        ),
        panel(
            "timeseries",
            "Validation AUC over time",
            "Validation AUC epoch after epoch: flat or falling means stop early.",
            [q(f"pneumonia_training_val_auc{{{sel}}}", "{{instance}}")],
            "short",
        ),
        row("GPU (dcgm-exporter, port 9400)"),
        panel(
            "timeseries",
            "GPU utilisation",
            "Share of time each GPU was busy (idle for an hour: gpu_box_idle alert).",
            [q(f"DCGM_FI_DEV_GPU_UTIL{{{sel}}}", "{{instance}} gpu {{gpu}}")],
            "percent",
        ),
        panel(
            "timeseries",
            "GPU memory used",
            "Frame buffer memory in use per GPU (dcgm reports MiB; shown in bytes).",
            [q(f"DCGM_FI_DEV_FB_USED{{{sel}}} * 1048576", "{{instance}} gpu {{gpu}}")],
            "bytes",
        ),
        row("Host"),
        panel(
            "timeseries",
            "CPU and memory of the training box",
            "CPU busy share and memory in use on the same host.",
            [
                q(f"instance:node_cpu_utilisation:ratio_rate5m{{{sel}}}", "cpu {{instance}}"),
                q(f"instance:node_memory_utilisation:ratio{{{sel}}}", "memory {{instance}}"),
            ],
            "percentunit",
        ),
    ]
    return dashboard(
        "pneumonia-training",
        "Training",
        "The GPU box: training progress from the trainer's textfile gauges, GPU use, host.",
        items,
        [var("instance", "Instance", "label_values(pneumonia_training_epoch, instance)")],
    )


DASHBOARDS = {"service.json": service, "hosts.json": hosts, "training.json": training}


def render() -> dict[str, str]:
    """File name -> JSON text, as committed."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)


if __name__ == "__main__":
    main()
