# The baseliner operator image: a static (musl) binary on distroless
# static, running as a numeric non-root user, so the Deployment in
# config/manager passes the `restricted` Pod Security level.
#
#   make docker-build IMG=baseliner:latest
#
# x86_64 only; the builder targets x86_64-unknown-linux-musl.

FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# ring builds C and assembly: musl-gcc makes it link statically.
ENV CC_x86_64_unknown_linux_musl=musl-gcc
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p baseliner --bin baseliner \
 && cp target/x86_64-unknown-linux-musl/release/baseliner /baseliner

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /baseliner /baseliner
# nonroot's uid and gid, numerically, so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/baseliner", "run"]
