"""The ``losscast`` command: serve the API, fit a law to logged runs, predict loss curves and plan
a training budget -- against a running service (``--url``) or in-process on local CSV files.

The command speaks the HTTP API's request and response shapes in both modes: in-process it
validates the same bodies and calls the same functions the service does, so a plan printed
locally and one fetched from a server read the same. ``losscast_cli.main`` holds the commands,
``losscast_cli.render`` the human-readable tables.
"""
