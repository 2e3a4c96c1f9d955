# ISR: one image for the recorder and the web UI (see docker-compose.yml).
# BASE: any Debian-based image with Python 3.11 and pip as `python` and `pip` on the
# PATH; for a machine that cannot reach Docker Hub, see docs/operations.md.
ARG BASE=python:3.11-slim
FROM ${BASE}

# arecord for soundcard sources; nothing else is needed at run time. Versions come
# with the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends alsa-utils \
    && rm -rf /var/lib/apt/lists/*

# A non-root user in the audio group, so /dev/snd works when it is passed in.
RUN useradd --system --uid 10001 --gid audio --home-dir /data --shell /usr/sbin/nologin isr \
    && mkdir -p /data/recordings && chown -R isr:audio /data

WORKDIR /app
COPY pyproject.toml ./
# The dependencies first, in a layer of their own: a change to src/ reinstalls only ISR.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt
COPY README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps .

USER isr
WORKDIR /data
VOLUME ["/data/recordings"]
EXPOSE 8080

# Healthy while the status file is fresh; the web service overrides this in compose.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-m", "isr.healthcheck", "recorder", "/data/recordings"]

# SIGTERM closes every file cleanly within 5 s; compose gives it 30 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["isr"]
CMD ["record", "-c", "/data/config.ini"]
