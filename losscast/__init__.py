"""losscast for training jobs: :mod:`losscast.client` (log a run's points to a losscast service,
read its forecast) and :mod:`losscast.callbacks` (Hugging Face and Lightning callbacks).

This package imports neither the service (``app``) nor the numerical core (``fitting``, JAX):
a training job that logs to losscast loads httpx and nothing else of it.
"""
