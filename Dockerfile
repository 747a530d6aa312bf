# cloudamqp-autoscaler: build with the official Rust image, run on slim Debian as non-root.
#
#   docker build -t cloudamqp-autoscaler .
#   docker run -p 8080:8080 \
#     -e AUTOSCALER__SERVER__WEBHOOK_TOKEN=... -e CLOUDAMQP_API_KEY=... \
#     -v autoscaler-state:/app/state cloudamqp-autoscaler            # dry run
#   ... cloudamqp-autoscaler serve --live                             # act for real

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Manifests first, so the dependency layer is cached across source changes.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin cloudamqp-autoscaler

FROM debian:bookworm-slim
# curl serves the HEALTHCHECK; ca-certificates lets the client verify customer.cloudamqp.com.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin autoscaler \
    && mkdir -p /app/state \
    && chown autoscaler:autoscaler /app/state
WORKDIR /app
COPY --from=build /src/target/release/cloudamqp-autoscaler /usr/local/bin/cloudamqp-autoscaler
COPY config ./config
COPY rules.toml ./rules.toml
# A non-loopback bind is refused unless AUTOSCALER__SERVER__WEBHOOK_TOKEN is set too.
ENV AUTOSCALER__SERVER__BIND=0.0.0.0:8080 \
    AUTOSCALER__STATE__DIR=/app/state \
    AUTOSCALER__RULES__PATH=/app/rules.toml
USER 10001:10001
VOLUME ["/app/state"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "2", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["cloudamqp-autoscaler"]
CMD ["serve"]
