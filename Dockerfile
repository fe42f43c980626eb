# qcgate runtime image: ONNX Runtime only, no torch. One image, three roles (scp, api, worker);
# `serve` runs all of them for a single-container deployment on the embedded default.
# Only the runtime folders are copied: service/ (the runtime) and export/qcgate/contract (the model
# contract and the shipped ONNX models); .dockerignore keeps training, export, benchmarks and tests out,
# so the installed `qcgate` package has no training code to import by mistake.
FROM python:3.11-slim

# A container is reached through its network, so both listeners leave loopback; qcgate then refuses
# to start until QCGATE_API_TOKENS and QCGATE_ALLOWED_CALLING_AES are given too (docs/security.md).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 QCGATE_DATA_DIR=/data \
    QCGATE_DICOM_HOST=0.0.0.0 QCGATE_HTTP_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY export ./export
RUN pip install --no-cache-dir . && rm -rf /app/service /app/export \
    && useradd --system --uid 10001 qcgate && mkdir /data && chown qcgate /data
USER qcgate
VOLUME ["/data"]
EXPOSE 11112 8080
HEALTHCHECK CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz')" || exit 1
ENTRYPOINT ["qcgate"]
CMD ["serve"]
