# syntax=docker/dockerfile:1
# The three services, built once in release mode, each in a slim image of its own:
#   docker build --target ingest-gateway -t vcount/ingest-gateway .   (or aggregator, query-service)
# docker-compose.yml builds all three from here.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
# rdkafka builds its bundled librdkafka with ./configure and make (no cmake feature),
# linked statically; zlib (libz-sys) links the system's. The full rust image already
# has gcc, make, perl, python3 and zlib1g-dev.
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY schemas schemas
COPY counting counting
COPY platform platform
COPY admin admin
COPY ingest-gateway ingest-gateway
COPY aggregator aggregator
COPY query-service query-service
COPY client client
COPY benches benches
COPY e2e e2e
# Not built here, but cargo loads every workspace member (e2e/tests/deploy.rs checks the list).
COPY xtask xtask
COPY fuzz fuzz
# Cache mounts keep the registry and the target directory between builds, so a
# source change recompiles the workspace crates only, not librdkafka and the rest.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ingest-gateway --bin aggregator --bin query-service --bin vcount-admin \
 && mkdir -p /out \
 && cp target/release/ingest-gateway target/release/aggregator target/release/query-service target/release/vcount-admin /out/

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# zlib1g for librdkafka's compression; curl for the compose healthchecks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends zlib1g curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home vcount
USER vcount
ENV NO_COLOR=1

# ---- one image per service --------------------------------------------------
FROM runtime AS ingest-gateway
COPY --from=build /out/ingest-gateway /usr/local/bin/ingest-gateway
EXPOSE 18080
ENTRYPOINT ["/usr/local/bin/ingest-gateway"]

FROM runtime AS aggregator
COPY --from=build /out/aggregator /usr/local/bin/aggregator
# The operator's tool rides with the aggregator (`docker compose exec aggregator vcount-admin …`).
COPY --from=build /out/vcount-admin /usr/local/bin/vcount-admin
EXPOSE 18082
ENTRYPOINT ["/usr/local/bin/aggregator"]

FROM runtime AS query-service
COPY --from=build /out/query-service /usr/local/bin/query-service
EXPOSE 18081
ENTRYPOINT ["/usr/local/bin/query-service"]
