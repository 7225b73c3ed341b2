# A GPU training worker: one Celery worker process per GPU (concurrency 1, prefetch 1).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip \
    && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN pip install --index-url https://download.pytorch.org/whl/cu128 "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY core core
COPY api api
COPY db db
COPY worker worker
COPY cli cli
COPY migrations migrations
COPY alembic.ini ./
# Editable: the code runs from /app, beside migrations/ (found by path from db/migrate.py).
RUN pip install -e .
CMD ["moetune", "worker", "--queues", "training", "--pool", "prefork"]
