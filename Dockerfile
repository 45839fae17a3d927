# paystate: one image for every role (engine, workers, reconciler, projector, gateway,
# sandboxes); the compose file picks the role with `paystate run --roles ...`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p paystate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 paystate
COPY --from=build /src/target/release/paystate /usr/local/bin/paystate
USER paystate
ENTRYPOINT ["paystate"]
CMD ["--help"]
