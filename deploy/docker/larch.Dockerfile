# syntax=docker/dockerfile:1.7
# Image of larch, the `larch` query command line: a static (musl) binary on a distroless base
# that has no shell and no package manager, run as a non-root user.
#
# Build from the repository root (not built by the test suite: it needs
# registries this project's CI does not reach):
#   docker build -f deploy/docker/larch.Dockerfile -t ghcr.io/larch-logs/larch:0.1.0 .
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
    cargo build --release --locked -p larch-cli --bin larch --target "$(cat /rust-target)" \
 && cp "target/$(cat /rust-target)/release/larch" /larch

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /larch /usr/local/bin/larch
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/larch"]
# docker run --rm -e LARCH_ADDR=http://larch-store:3100 ghcr.io/larch-logs/larch:0.1.0 labels
