# syntax=docker/dockerfile:1
# moat: the node agent image (`moat agent`, see deploy/). Also runs the other commands:
#   docker run --rm moat:0.1.0 validate --help
#
#   docker build -t moat:0.1.0 .
#   kind load docker-image moat:0.1.0 --name moat      # kind: no registry needed
# Without Docker or a registry, deploy/image/build.sh builds the same contents (test/deploy/run.sh
# checks that the two agree).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: TypeScript -> dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would build before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json && find dist -name '*.test.js*' -delete

# ---- runtime: Node 24 LTS + the netfilter userland the agent drives
FROM ${NODE_IMAGE} AS runtime
# nftables: the dataplane (`nft -f`); conntrack: flushes flows a new policy denies;
# iproute2: addresses and links; iptables + ipset: the legacy backend only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables conntrack iproute2 iptables ipset \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
# flannel's Helm chart runs its policy sidecar as `/bin/netpol --hostname-override=... --v=2`.
COPY deploy/image/netpol /bin/netpol
LABEL org.opencontainers.image.title="moat" \
      org.opencontainers.image.description="Kubernetes NetworkPolicy enforced in the Linux kernel with nftables" \
      org.opencontainers.image.licenses="Apache-2.0"
# uid 0 with CAP_NET_ADMIN only (the DaemonSet drops every other capability). nft and conntrack
# need CAP_NET_ADMIN in effect; Kubernetes grants added capabilities without ambient ones, so a
# non-zero uid would lose them when it execs nft.
USER 0:0
# The agent is PID 1 here: it must handle SIGTERM itself (it does, to apply --on-exit).
ENTRYPOINT ["node", "dist/src/cli/bin.js"]
CMD ["--help"]
