"""The local stack on loopback: the one way tests, benchmarks and `make up` start the system.

One module per process kind, each building the command line production runs and starting it
on free ports with its log kept: ``redis_server``, ``api``, ``worker``, ``ui``, ``nginx``;
``stack.LocalStack`` composes them. ``processes`` holds the plumbing (free ports, start, stop,
wait), ``client`` the calls a user of the API makes, ``tiny_model`` a small real model to serve
without training. ``python -m devstack ROLE`` runs one service in the foreground: the Procfile
that `make up` hands to honcho uses it, so both start the same command lines.
"""
