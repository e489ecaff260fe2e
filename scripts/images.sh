#!/usr/bin/env bash
# Builds static binaries into dist/ and one FROM-scratch image per binary:
# incasso/{poller,dunning,ficsim,mailcatcher}:$TAG and incasso/nats-server:$TAG
# (nats-server from its Go module, since no registry may be reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${INCASSO_TAG:-local}"
mkdir -p dist
export CGO_ENABLED=0
# One invocation: packages and links are scheduled across all cores.
go build -trimpath -ldflags="-s -w" -o dist/ ./cmd/poller ./cmd/dunning ./cmd/ficsim ./cmd/mailcatcher \
  github.com/nats-io/nats-server/v2
for b in poller dunning ficsim mailcatcher; do
  docker build -q -f deploy/docker/Dockerfile --build-arg BIN="$b" -t "incasso/$b:$TAG" dist >/dev/null
  echo "built incasso/$b:$TAG"
done
docker build -q -f deploy/docker/Dockerfile.nats -t "incasso/nats-server:$TAG" dist >/dev/null
echo "built incasso/nats-server:$TAG"
