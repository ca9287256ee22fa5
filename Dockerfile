# authz: Envoy ext_authz gRPC server. Build from the repository root:
#   docker build -t authz:dev .
#   docker build --build-arg EXTRAS=otel -t authz:dev-otel .   # with OpenTelemetry tracing
# The image runs `authz serve` as an unprivileged user (uid/gid 65532, as the manifests expect), writes
# nothing outside /tmp and works with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore lets in only what the package build needs.
COPY . .
# A virtualenv at the same path in both stages, so its scripts' shebangs stay valid after the copy.
# With EXTRAS=otel, opentelemetry-proto's own files go back over the old copy xds-protos ships.
RUN python -m venv /opt/authz \
 && /opt/authz/bin/pip install ".${EXTRAS:+[$EXTRAS]}" \
 && if [ -n "$EXTRAS" ]; then /opt/authz/bin/pip install --force-reinstall --no-deps opentelemetry-proto; fi \
 && test -x /opt/authz/bin/authz \
 && /opt/authz/bin/python -c "import authz"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 65532 authz \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin authz
COPY --from=build /opt/authz /opt/authz
ENV PATH=/opt/authz/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp
# 9191: gRPC (envoy.service.auth.v3.Authorization, grpc.health.v1, reflection)
# 9090: HTTP (/metrics, /healthz, /readyz)
# The admin service (authz.admin.v1.Admin) listens on 127.0.0.1:9192 inside the container only:
# kubectl exec … authz explain, or kubectl port-forward.
EXPOSE 9191 9090
ENTRYPOINT ["authz"]
CMD ["serve"]
