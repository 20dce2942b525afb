# facerisk BIDS App container.
#   docker build -t facerisk:0.1.0 .
#   docker run --rm -v /data/bids:/data:ro -v /data/out:/out facerisk:0.1.0 /data /out participant
# The install steps are scripts/install.sh, the same script CI runs.
FROM python:3.11-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="facerisk" \
      org.opencontainers.image.description="BIDS App: face re-identification risk of head MRI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    FACERISK_VENV=/opt/facerisk \
    PATH=/opt/facerisk/bin:$PATH \
    VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow \
    OMP_NUM_THREADS=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bids_app ./bids_app
COPY boilerplate ./boilerplate
COPY scripts/install.sh ./scripts/install.sh
RUN bash scripts/install.sh \
    && rm -rf /var/lib/apt/lists/* /src \
    && useradd --create-home --uid 1000 --user-group facerisk

# Optional insightface model pack from the build context (see docker/no-model-pack).
ARG MODEL_PACK=docker/no-model-pack
COPY ${MODEL_PACK} /opt/facerisk/models/pack/

USER 1000:1000
WORKDIR /home/facerisk
ENTRYPOINT ["facerisk"]
CMD ["--help"]
