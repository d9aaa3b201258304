"""Running a published model in the worker: runtimes, exports, worker settings and metrics."""
