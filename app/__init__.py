"""losscast's HTTP service: runs in, fits and predicted curves out, stored safely.

``app.main`` builds the FastAPI app; ``app.routers`` hold one router per resource;
``app.services`` (one module per resource) call into ``fitting/``; ``app.domain`` holds the
records users get (a fit report, a fitted law, a curve); ``app.storage`` is the only module that
talks SQL.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("losscast")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0"
