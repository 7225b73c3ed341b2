# The API: FastAPI under uvicorn. CPU-only torch is enough here: the API process never
# imports torch itself (it validates uploads and enqueues by task name), but the package
# depends on it, and the CPU wheel is ~10x smaller than the CUDA one.
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
EXPOSE 8000
CMD ["uvicorn", "api.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
