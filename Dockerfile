# hpsearch worker / dashboard image: CPU-only torch, the package, and the shipped studies.
# A pinned release of the base: an upgrade is a decision (and a rebuild), not whatever the tag means today.
FROM python:3.11.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app

# Every wheel at the version the test suite last passed with (deploy/constraints.txt): a rebuild
# next month installs the same image, not whatever is newest.
COPY deploy/constraints.txt ./
# CPU wheels of torch/torchvision first (the default wheels bundle CUDA: ~3 GB more); "==2.14.1"
# matches the CPU build "2.14.1+cpu".
RUN pip install -c constraints.txt --index-url https://download.pytorch.org/whl/cpu torch torchvision

COPY pyproject.toml README.md ./
COPY src ./src
# [grpc]: `hpsearch storage-proxy` and workers on --storage grpc://HOST:PORT
RUN pip install -c constraints.txt '.[grpc]'
COPY studies ./studies

# Never root: user 1000 owns only what it writes (data, artifacts, checkpoints); a new named volume
# mounted on these folders takes their owner, so compose's volumes are writable as this user too.
RUN useradd --uid 1000 --user-group --no-create-home --home-dir /app hpsearch \
    && mkdir -p /data /artifacts /app/runs && chown hpsearch:hpsearch /data /artifacts /app/runs
USER 1000:1000

ENV HPSEARCH_STUDIES=/app/studies HPSEARCH_DATA=/data
VOLUME ["/data"]
ENTRYPOINT ["hpsearch"]
CMD ["--help"]
