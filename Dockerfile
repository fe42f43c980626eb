# qcgate runtime images: ONNX Runtime only, no torch. Two targets of one file:
#
#   docker build --target cpu -t qcgate:0.1.0 .       # also what a plain `docker build .` gives
#   docker build --target gpu -t qcgate:0.1.0-gpu .   # GPU workers (the Helm chart: <tag>-gpu)
#
# The cpu image has every role (scp, api, worker, sweeper, migrate); its default `serve` runs the
# receiver, API and worker for a single-container deployment on the embedded default. The gpu image
# runs `qcgate worker --kind gpu` (docs/gpu.md, "Image"). Only the runtime folders go in: service/
# (the runtime) and export/qcgate/contract (the model contract and the shipped ONNX models);
# .dockerignore keeps training, export, benchmarks and tests out, so the installed `qcgate` package
# has no training code to import by mistake. Needs BuildKit (Docker's default builder since 23.0)
# for RUN --mount, which installs the wheel without leaving it in a layer.

# ---- wheel: qcgate as one pure-Python wheel, and the gpu image's requirements ----------------------
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY export ./export
# requirements-gpu.txt: qcgate's dependencies from pyproject.toml with `onnxruntime` replaced by the
# `gpu` extra (`onnxruntime-gpu`), so the two images cannot drift apart in anything else.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && python -c "import re, tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; gpu = project['optional-dependencies']['gpu']; kept = [d for d in project['dependencies'] if re.split(r'[^A-Za-z0-9._-]', d)[0].lower() != 'onnxruntime']; assert len(kept) == len(project['dependencies']) - 1, 'onnxruntime is not a dependency'; assert any(d.startswith('onnxruntime-gpu') for d in gpu), gpu; print(*kept, *gpu, sep=chr(10))" \
        > /dist/requirements-gpu.txt

# ---- gpu: NVIDIA's CUDA runtime with cuDNN, onnxruntime-gpu INSTEAD of onnxruntime -------------
# onnxruntime-gpu 1.31.1 on PyPI is built for CUDA 13.x and cuDNN 9 (its `cuda` extra names
# nvidia-cuda-runtime ~=13.0, its `cudnn` extra nvidia-cudnn-cu13 ~=9.0): so CUDA 13.0 with cuDNN 9
# on Ubuntu 24.04, whose Python is 3.12 (qcgate needs 3.11 or later; Ubuntu 24.04 has no 3.11).
# CUDA minor-version compatibility lets an ONNX Runtime built with any CUDA 13.x run on this runtime;
# the node needs an NVIDIA driver for CUDA 13 (580 or later) and the NVIDIA Container Toolkit.
# A newer ONNXRUNTIME_GPU_VERSION may need a newer CUDA or cuDNN: change both together.
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 AS gpu
ARG ONNXRUNTIME_GPU_VERSION=1.31.1
# Only the status endpoint (/healthz, /readyz, /metrics) listens beyond loopback: a worker serves no
# DICOM and no API, so QCGATE_DICOM_HOST and QCGATE_HTTP_HOST stay on loopback (beyond it qcgate would
# refuse to start without QCGATE_ALLOWED_CALLING_AES and QCGATE_API_TOKENS). 9090: the chart's port.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 QCGATE_DATA_DIR=/data \
    QCGATE_STATUS_HOST=0.0.0.0 QCGATE_STATUS_PORT=9090 \
    VIRTUAL_ENV=/opt/qcgate PATH=/opt/qcgate/bin:$PATH
WORKDIR /app
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/qcgate
# Both packages provide the one `onnxruntime` module, and with both installed the CPU build's files
# shadow the CUDA provider. So the wheel goes in without its dependencies (which name onnxruntime)
# and the dependencies from requirements-gpu.txt, with onnxruntime-gpu pinned to the version this
# CUDA base was chosen for. The build fails if plain onnxruntime got in anyway or the CUDA provider is
# missing. (`pip check` reports onnxruntime as missing: that is the point.)
RUN --mount=type=bind,from=wheel,source=/dist,target=/dist \
    echo "onnxruntime-gpu==${ONNXRUNTIME_GPU_VERSION}" > /tmp/constraints.txt \
    && pip install --no-cache-dir -r /dist/requirements-gpu.txt -c /tmp/constraints.txt \
    && pip install --no-cache-dir --no-deps /dist/qcgate-*.whl \
    && rm /tmp/constraints.txt \
    && python -c "import importlib.metadata as md, onnxruntime as ort; names = {d.metadata['Name'].lower() for d in md.distributions()}; assert 'onnxruntime' not in names, 'plain onnxruntime is installed'; assert 'onnxruntime-gpu' in names; assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()" \
    && groupadd --system --gid 10001 qcgate \
    && useradd --system --uid 10001 --gid qcgate --no-create-home --shell /usr/sbin/nologin qcgate \
    && mkdir /data && chown qcgate:qcgate /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 9090
HEALTHCHECK CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['QCGATE_STATUS_PORT'] + '/healthz')"]
ENTRYPOINT ["qcgate"]
CMD ["worker", "--kind", "gpu"]

# ---- cpu: the default image (last, so a plain `docker build .` builds it) -----------------------
FROM python:3.11-slim AS cpu
# A container is reached through its network, so both listeners leave loopback; qcgate then refuses
# to start until QCGATE_API_TOKENS and QCGATE_ALLOWED_CALLING_AES are given too (docs/security.md).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 QCGATE_DATA_DIR=/data \
    QCGATE_DICOM_HOST=0.0.0.0 QCGATE_HTTP_HOST=0.0.0.0
WORKDIR /app
RUN --mount=type=bind,from=wheel,source=/dist,target=/dist \
    pip install --no-cache-dir /dist/qcgate-*.whl \
    && groupadd --system --gid 10001 qcgate \
    && useradd --system --uid 10001 --gid qcgate --no-create-home --shell /usr/sbin/nologin qcgate \
    && mkdir /data && chown qcgate:qcgate /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 11112 8080
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"]
ENTRYPOINT ["qcgate"]
CMD ["serve"]
