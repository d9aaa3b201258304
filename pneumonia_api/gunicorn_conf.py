"""Gunicorn settings of the API (``-c python:pneumonia_api.gunicorn_conf``).

Everything comes from the environment. Prometheus multiprocess mode's hooks (wipe the
directory at start, mark dead workers) are :mod:`observability.gunicorn_hooks`, shared with the UI.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:5000")
# An upload is CPU work in Python (multipart parsing, structure checks, SHA-256, the Redis
# write): threads of one process would share its GIL. Single-threaded processes, two per
# core, gave the lowest accept latency (PERFORMANCE.md: at 16 clients, accept p95 20 ms
# with 4 x 1 on 2 cores, 23 ms with 3 x 2, 26 ms with the former 2 x 4).
workers = int(os.environ.get("GUNICORN_WORKERS") or 2 * len(os.sched_getaffinity(0)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
# Method and path only, never the query string (%(r)s would log it) or bodies: paths carry
# only ids, and whatever a client puts in a query string stays out of the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# `make up` runs the API and the UI under gunicorn side by side: no shared control socket.
control_socket_disable = True


# Prometheus multiprocess mode: the hooks shared with the UI.
from observability.gunicorn_hooks import child_exit, on_starting  # noqa: E402,F401
