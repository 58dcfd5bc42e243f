# Builds the Sealplane binaries. Used by docker-compose.yml; CI does not use
# Docker (tests run the real servers as plain processes on loopback).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/sealplane --create-home sealplane
COPY --from=build /src/target/release/sealplane /src/target/release/sealplane-reactor /src/target/release/sealctl /usr/local/bin/
USER sealplane
VOLUME /var/lib/sealplane
ENTRYPOINT ["sealplane"]
