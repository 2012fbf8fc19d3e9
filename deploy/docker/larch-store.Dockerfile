# syntax=docker/dockerfile:1.7
# Image of larch-store, the Loki-compatible log store: a static (musl) binary on a distroless base
# that has no shell and no package manager, run as a non-root user.
#
# Build from the repository root (not built by the test suite: it needs
# registries this project's CI does not reach):
#   docker build -f deploy/docker/larch-store.Dockerfile -t ghcr.io/larch-logs/larch-store:0.1.0 .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ...

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
ARG TARGETARCH
WORKDIR /src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# musl-tools links C code (if any crate has some) statically. Debian's
# package versions are fixed by the pinned base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac > /rust-target \
 && rustup target add "$(cat /rust-target)"
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p larch-server --bin larch-store --target "$(cat /rust-target)" \
 && cp "target/$(cat /rust-target)/release/larch-store" /larch-store

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /larch-store /usr/local/bin/larch-store
USER 10001:10001
EXPOSE 3100 9095
ENTRYPOINT ["/usr/local/bin/larch-store"]
# Without arguments the store keeps its data under /var/lib/larch (mount a
# volume there); Kubernetes passes --config instead.
CMD ["--data-dir=/var/lib/larch"]
