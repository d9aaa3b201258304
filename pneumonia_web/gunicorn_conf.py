"""Gunicorn settings of the web UI (``-c python:pneumonia_web.gunicorn_conf``), from the env.

The UI host runs this on :5001 in the private subnet; nginx on the public host is its only
client, so X-Forwarded-* are trusted from FORWARDED_ALLOW_IPS (the nginx address) alone.
"""

import os

bind = os.environ.get("WEB_BIND", "127.0.0.1:5001")
workers = int(os.environ.get("WEB_WORKERS", "2"))
# Threads: result cards poll every second while the model works; uploads wait on the API.
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 75  # longer than nginx's upstream keepalive, so nginx closes first
accesslog = os.environ.get("WEB_ACCESSLOG", "-")
# Paths only, never query strings (user names in worklist filters) or bodies.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Gunicorn's control socket defaults to one path per user: two gunicorns on a host (the API and
# the UI under `make up`) would fight over it, and nothing here uses it.
control_socket_disable = True


# Prometheus multiprocess mode (the UI's own PROMETHEUS_MULTIPROC_DIR, not the API's): the
# hooks shared with the API.
from observability.gunicorn_hooks import child_exit, on_starting  # noqa: E402,F401
