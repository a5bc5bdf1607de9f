# The kibitz image the production compose file runs (docs/deploy.md).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir . && useradd --system --home /data kibitz && mkdir -p /data \
    && chown kibitz /data
USER kibitz
ENV KIBITZ_DATA_DIR=/data
EXPOSE 8000 8001
CMD ["kibitz", "serve", "--host", "0.0.0.0", "--port", "8000", "--live-port", "8001"]
