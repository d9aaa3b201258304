"""What the API and the UI share to be observed: request metrics, /metrics, gunicorn hooks.

Both services are Flask apps under gunicorn scraped by the same Prometheus; keeping the request
timer, the multiprocess-aware /metrics view and the gunicorn hooks here means the two services
cannot drift apart in how they count.
"""
