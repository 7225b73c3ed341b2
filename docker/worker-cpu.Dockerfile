# A CPU training worker (for development clusters without GPUs).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
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
