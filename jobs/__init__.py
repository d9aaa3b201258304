"""The job contract between the API, the inference workers and the trainer.

A neutral package: the API (``pneumonia_api``) and the workers (``model``) both import it, and
it imports neither, so a worker host does not load Flask and the two sides can be upgraded
independently without drifting apart. One concept per module:

- :mod:`jobs.record`   the prediction record, its statuses and labels (no Redis needed)
- :mod:`jobs.keys`     every Redis key name of the system, spelled once
- :mod:`jobs.queue`    the stream of jobs: submit, read, reclaim, start, finish, fail, history
- :mod:`jobs.registry` worker heartbeats: who is alive and what it serves
- :mod:`jobs.model`    the model card the workers serve now
- :mod:`jobs.training` progress of a running training
- :mod:`jobs.verdicts` the reader's verdict on a result, and agreement counts per model
- :mod:`jobs.heatmaps` Grad-CAM requests and results ("where the model looked")

The UI never imports this package: it reaches all of it through the API.
"""
