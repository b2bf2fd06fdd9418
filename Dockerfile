# ViralSplit server: Debian's Python and ffmpeg, data in the /data volume, a non-root user.
# Build: docker build -t viralsplit .
# Run:   docker run -p 8000:8000 -v viralsplit-data:/data viralsplit
# The web page is built in a Node stage and copied into the package's static folder.

FROM node:22-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --uid 10001 viralsplit

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server/ server/
COPY --from=web /src/server/viralsplit/static/ server/viralsplit/static/
RUN pip install --no-cache-dir . \
    && mkdir /data && chown viralsplit:viralsplit /data

USER viralsplit
ENV VIRALSPLIT_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
CMD ["viralsplit", "serve", "--host", "0.0.0.0", "--port", "8000"]
