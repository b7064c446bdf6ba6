# framex-rs: a release build in a Rust image, run as a non-root user on a slim Debian.
#   docker build -t framex-rs .
#   docker run -p 8080:8080 -v $PWD/config.toml:/etc/framex/config.toml:ro framex-rs
# The config must listen on 0.0.0.0 inside the container (see
# deploy/kubernetes/configmap.yaml). Liveness: GET /health; readiness: GET /ready.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin framex

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home framex
COPY --from=build /src/target/release/framex /usr/local/bin/framex
COPY config.example.toml /etc/framex/config.toml
USER 10001
# Inside a container the listener must face outward, whatever the file says.
ENV SERVER__HOST=0.0.0.0
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/framex"]
CMD ["run", "--config", "/etc/framex/config.toml"]
