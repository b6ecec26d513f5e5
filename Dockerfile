# relance container image. Build from the repository root (plain `docker build`; no
# BuildKit feature is needed):
#
#   docker build -t relance .
#
# Run (embedded default configuration, SQLite and sample data in a volume, every
# action written to the outbox folder, nothing sent):
#
#   docker run --rm --stop-timeout 45 -p 127.0.0.1:8080:8080 -v relance-data:/var/lib/relance relance
#
# With PostgreSQL: docker-compose.yml. Production: mount a configuration and pass
# secrets as variables, see docs/operations.md ("Running in a container").

# --- build -------------------------------------------------------------------------
FROM rust:1.92-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer of their own: it is rebuilt only when Cargo.toml,
# Cargo.lock or benches/ change. The manifest names the library, the binary and the
# benches, so Cargo needs them to exist: a placeholder library and binary stand in for
# src/ (benches are not compiled by `cargo build --bin`). relance's own placeholder
# artifacts are removed after, so the real build below cannot mistake them for
# up-to-date.
COPY Cargo.toml Cargo.lock ./
COPY benches/ benches/
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin relance \
 && cargo clean --release --package relance \
 && rm -rf src

# The whole source: src/, and what the binary compiles in (migrations/, templates/,
# rules/, examples/relance.yaml, examples/data/, docs/openapi.json). .dockerignore
# keeps target/ and local files out. COPY keeps the files' dates, which may be older
# than the placeholder build: touching the crate roots makes Cargo rebuild relance
# whatever they are, and the version check fails the build if a placeholder came out.
COPY . .
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin relance \
 && install -m 0755 target/release/relance /usr/local/bin/relance \
 && relance --version | grep -q '^relance '

# --- runtime -----------------------------------------------------------------------
FROM debian:bookworm-slim

# relance carries its own root certificates for SMTP and HTTPS (a private CA is given
# with channels.email.smtp.ca_file); ca-certificates serves anything else in the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 relance \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/relance \
      --shell /usr/sbin/nologin relance \
 && install -d -m 0750 -o relance -g relance /var/lib/relance \
 && install -d -m 0755 /etc/relance

# One binary: migrations, templates, fonts and the default configuration are compiled in.
COPY --from=build /usr/local/bin/relance /usr/local/bin/relance
# The embedded default configuration names rules/*.rhai relative to the working
# directory. relance falls back to built-in copies when they are missing (with a
# warning); shipping them here lets `docker run relance` start cleanly and gives a
# volume mounted on /var/lib/relance a copy to edit (owned by relance).
COPY --chown=10001:10001 rules/ /var/lib/relance/rules/

# Working directory and state: the SQLite file, outbox/ and archive/ of the embedded
# default are created here. Mount a volume on it. A configuration of your own goes
# in /etc/relance (RELANCE_CONFIG=/etc/relance/relance.yaml), with absolute paths
# under /var/lib/relance for what relance writes.
WORKDIR /var/lib/relance
USER 10001:10001

ENV RELANCE_LOG_FORMAT=json
EXPOSE 8080

# SIGTERM stops relance gracefully within its --grace period (30 s): give the
# container longer than that (docker run --stop-timeout 45; docker compose
# stop_grace_period: 45s; Kubernetes terminationGracePeriodSeconds: 45).
STOPSIGNAL SIGTERM

# No HEALTHCHECK: the image has no HTTP client (curl, wget) to run one. Orchestrators
# should probe GET /healthz (liveness) and GET /readyz (readiness) on port 8080.

ENTRYPOINT ["relance"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
