# syntax=docker/dockerfile:1
#
# nfqfw container image: a static nfqfw binary on Debian slim with the
# iptables tools the daemon runs (iptables-{legacy,nft}-{restore,save} and
# their ip6tables twins; "iptables -V" picks the backend).
#
# Build (VERSION is what "nfqfw version" and "nfqfw health" report):
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t nfqfw .
#
# Run: a firewall for the host, so it shares the host's network namespace and
# needs CAP_NET_ADMIN (iptables, NFQUEUE, conntrack, ipset over netlink) and
# CAP_NET_RAW (the legacy backend's iptables-legacy-restore). The config is yours (no default is shipped: a firewall that
# starts with a guessed policy can lock you out); the examples are in the
# image under /usr/share/doc/nfqfw/examples.
#
#   touch /run/xtables.lock      # share iptables' lock with the host's tools
#   docker run -d --name nfqfw --restart unless-stopped --stop-timeout 30 \
#     --network host --cap-add NET_ADMIN --cap-add NET_RAW \
#     -v /etc/nfqfw:/etc/nfqfw:ro -v nfqfw-state:/var/lib/nfqfw \
#     -v /run/xtables.lock:/run/xtables.lock \
#     nfqfw
#   docker exec nfqfw nfqfw state     # the inspecting commands, inside
#
# Remote lockout: on a host you reach over the network, the config must admit
# your management connection (allowlist, a rule for SSH) before you start it.
# Match the host's backend: the image's "iptables" is the nft flavour; on a
# host whose "iptables -V" says (legacy), set "backend: legacy" in the config
# (or append --backend legacy to the run command).
#
# Reproducible builds: base images are pinned by tag below, the Go build is
# -trimpath with no VCS stamping and a fixed toolchain (GOTOOLCHAIN=local),
# and the iptables package version is pinned. For bit-for-bit pinning, pin
# the bases by digest too (the tag stays for humans, the digest wins):
#
#   docker buildx imagetools inspect golang:1.26.8-bookworm   # "Digest: sha256:..."
#   FROM golang:1.26.8-bookworm@sha256:<digest> AS build
#   FROM debian:12.11-slim@sha256:<digest>
#
# and build with SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) so layer
# timestamps are fixed. Bump the pins together (Go as go.mod's "go" line,
# IPTABLES_VERSION as "apt-cache policy iptables" in the new base shows).
#
# scripts/packaging's tests lint this file, run the build stage's commands
# and check the final stage's packages provide every binary the daemon runs.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
# Dependencies in their own layer: rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/nfqfw ./cmd/nfqfw
RUN /out/nfqfw version

FROM debian:12.11-slim
ARG VERSION=dev
ARG IPTABLES_VERSION=1.8.9-2
LABEL org.opencontainers.image.title="nfqfw" \
      org.opencontainers.image.description="Stateful firewall daemon: the kernel keeps established traffic, every NEW flow is decided through NFQUEUE" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/nfqfw/nfqfw" \
      org.opencontainers.image.documentation="https://github.com/nfqfw/nfqfw#readme" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.11-slim"
# iptables carries both flavours (xtables-legacy-multi, xtables-nft-multi) and
# registers the "iptables" alternative. No ipset or conntrack tools: the
# daemon speaks ipset and ctnetlink over netlink itself.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "iptables=${IPTABLES_VERSION}" \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/nfqfw /usr/local/sbin/nfqfw
COPY rules/examples/ /usr/share/doc/nfqfw/examples/
# Root: the daemon needs CAP_NET_ADMIN and CAP_NET_RAW, which docker grants
# to the container's root with --cap-add; the control socket is root only.
USER root
VOLUME ["/etc/nfqfw", "/var/lib/nfqfw"]
# SIGTERM makes the daemon remove exactly the chains it installed.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["nfqfw", "health", "--timeout", "3s"]
ENTRYPOINT ["nfqfw"]
CMD ["run", "-c", "/etc/nfqfw/nfqfw.yaml"]
