# Raftka's container image: a small Debian runtime with raftka-node and the raftka CLI, run as
# a non-root user, data in a volume.
#
#   docker build -t raftka .                      # compiles in a Rust image (the default)
#   docker run -p 127.0.0.1:19091:9092 -v raftka-data:/var/lib/raftka raftka
#       (a single node; its cluster secret is generated into the volume)
#
# Offline (no registry), from binaries built on the host against the same Debian release:
#   docker build --target prebuilt --build-arg RUNTIME_IMAGE=<local base image> \
#       --build-arg BIN_DIR=target/release -t raftka .
# (scripts/compose-test.sh does this with a base image it makes with debootstrap.)
#
# The stages are ordered so that `--target prebuilt` never needs the Rust image: the classic
# builder runs every stage before the target.

ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

# ---- the runtime base: a user, the data directory, no build tools ---------------------------
FROM ${RUNTIME_IMAGE} AS base
RUN groupadd --system --gid 10001 raftka \
 && useradd --system --uid 10001 --gid raftka --home-dir /var/lib/raftka --shell /usr/sbin/nologin raftka \
 && mkdir -p /var/lib/raftka \
 && chown raftka:raftka /var/lib/raftka
ENV RAFTKA_DATA_DIR=/var/lib/raftka \
    RAFTKA_LISTEN=0.0.0.0:9092
VOLUME ["/var/lib/raftka"]
EXPOSE 9092
# Ready = GET /readyz answers 200 (bash's /dev/tcp: the slim image has no curl).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${RAFTKA_LISTEN##*:} && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM

# ---- binaries built on the host ---------------------------------------------------------------
FROM base AS prebuilt
ARG BIN_DIR=target/release
COPY ${BIN_DIR}/raftka-node ${BIN_DIR}/raftka /usr/local/bin/
USER raftka
WORKDIR /var/lib/raftka
ENTRYPOINT ["raftka-node"]

# ---- compile in a Rust image ----------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p raftka-node --bin raftka-node -p raftka-client --bin raftka \
 && mkdir /out \
 && cp target/release/raftka-node target/release/raftka /out/

# ---- the default image ----------------------------------------------------------------------
FROM base AS runtime
COPY --from=build /out/raftka-node /out/raftka /usr/local/bin/
USER raftka
WORKDIR /var/lib/raftka
ENTRYPOINT ["raftka-node"]
