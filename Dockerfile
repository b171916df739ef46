# Skyvault in a container: build with the Rust toolchain, run on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/skyvault /usr/local/bin/skyvault
ENV SKYVAULT_DATA_DIR=/var/lib/skyvault SKYVAULT_BIND=0.0.0.0:8080
VOLUME /var/lib/skyvault
EXPOSE 8080
ENTRYPOINT ["skyvault"]
CMD ["serve"]
