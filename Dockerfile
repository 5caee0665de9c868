# The losscast service: `docker build -t losscast .`, then an API key (the image listens on
# 0.0.0.0, which needs one, or LOSSCAST_ALLOW_ANONYMOUS=1):
#   docker run --rm -v losscast:/data losscast losscast keys create --name admin --scope admin
#   docker run -p 8000:8000 -v losscast:/data losscast
# SQLite lives in the /data volume (the server runs fit jobs itself); with
# DATABASE_URL=postgresql+psycopg://... run `losscast worker` containers for the jobs
# (deploy/compose.yaml: PostgreSQL, 2 API replicas, 2 workers).
# BASE_IMAGE: any image with Python 3.11 and pip as `python` (deploy/debian_base.sh builds one
# from Debian's packages where no registry can be reached).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite:////data/losscast.db \
    LOSSCAST_JAX_CACHE_DIR=/data/jax-cache

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin losscast \
    && mkdir /data && chown losscast:losscast /data

WORKDIR /srv/losscast
COPY pyproject.toml README.md* ./
COPY fitting ./fitting
COPY app ./app
COPY losscast ./losscast
COPY losscast_cli ./losscast_cli
RUN pip install '.[import]' && rm -rf build *.egg-info

USER losscast
VOLUME ["/data"]
EXPOSE 8000

# /healthz turns 200 after the JIT warm-up (tens of seconds on 2 cores; faster with a warm
# /data/jax-cache), hence the start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["sh", "-c", "exec uvicorn app.main:app --host \"$HOST\" --port \"$PORT\""]
