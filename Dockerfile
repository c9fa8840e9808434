# hpsearch worker / dashboard image: CPU-only torch, the package, and the shipped studies.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app

# CPU wheels of torch/torchvision first (the default wheels bundle CUDA: ~3 GB more).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision

COPY pyproject.toml README.md ./
COPY src ./src
# [grpc]: `hpsearch storage-proxy` and workers on --storage grpc://HOST:PORT
RUN pip install '.[grpc]'
COPY studies ./studies

ENV HPSEARCH_STUDIES=/app/studies HPSEARCH_DATA=/data
VOLUME ["/data"]
ENTRYPOINT ["hpsearch"]
CMD ["--help"]
