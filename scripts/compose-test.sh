#!/usr/bin/env bash
# Smoke test of docker-compose.yml: build the images, start the stack, check
# that events flow (poller metrics) and that a reminder reaches the mail
# catcher, then tear everything down. Skips cleanly without Docker.
# With --cluster it runs the "cluster" profile: 3 NATS nodes, R3 streams.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "compose test: skipped (no Docker engine)"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
export COMPOSE_PROJECT_NAME=incasso-ci INCASSO_DEMO_CLOCK=send-window
PROFILE=()
if [ "${1:-}" = "--cluster" ]; then
  PROFILE=(--profile cluster)
  export INCASSO_REPLICAS=3 INCASSO_NATS_URL=nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222
fi
# .ci/run has just built the images (INCASSO_IMAGES_BUILT=1): do not
# build them twice.
if [ "${INCASSO_IMAGES_BUILT:-}" != 1 ]; then ./scripts/images.sh; fi
cleanup() { "${COMPOSE[@]}" "${PROFILE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
"${COMPOSE[@]}" "${PROFILE[@]}" up -d
get() { curl -fsS --max-time 3 "$1" 2>/dev/null || true; }
events=0 mails=0 queued=0 creditor=no console=no
jar=$(mktemp)
ops() { curl -fsS --max-time 3 -H "Authorization: Bearer ${DUNNING_OPS_TOKEN:-compose-demo-ops-token}" "http://127.0.0.1:8081$1" 2>/dev/null || true; }
for _ in $(seq 1 90); do
  events=$(get http://127.0.0.1:8080/metrics | awk '/^incasso_events_published_total/ {s+=$2} END {print s+0}')
  mails=$(get http://127.0.0.1:8025/api/messages | { grep -o '"id":' || true; } | wc -l)
  queued=$(ops /v1/approvals | { grep -o '"awaiting_approval"' || true; } | wc -l)
  # The first letter names the creditor: its registered office (the
  # policy's) and the IBAN of its bank account in FIC.
  if [ "$mails" -gt 0 ] && get http://127.0.0.1:8025/messages/1 | tr -d '\r' | sed -e ':a' -e '/=$/N; s/=\n//; ta' | grep -q 'Via dei Mille 12' &&
     get http://127.0.0.1:8025/messages/1 | tr -d '\r' | sed -e ':a' -e '/=$/N; s/=\n//; ta' | grep -q 'IBAN IT'; then creditor=yes; fi
  # The console: sign in with the shared token and a name, see the queue.
  if [ "$console" = no ] && curl -fsS --max-time 3 -c "$jar" -o /dev/null -d "token=${DUNNING_OPS_TOKEN:-compose-demo-ops-token}&name=compose-test" http://127.0.0.1:8081/console/login 2>/dev/null &&
     curl -fsS --max-time 3 -b "$jar" http://127.0.0.1:8081/console/ 2>/dev/null | grep -q 'Da approvare'; then console=yes; fi
  if [ "${events%.*}" -gt 0 ] && [ "$mails" -gt 0 ] && [ "$queued" -gt 0 ] && [ "$creditor" = yes ] && [ "$console" = yes ]; then
    echo "compose test: ok — $events events published, $mails reminders in the mail catcher (with the creditor's address and IBAN), $queued waiting for approval, shown in the console"
    exit 0
  fi
  sleep 2
done
echo "compose test: FAILED — events=$events mails=$mails queued=$queued creditor=$creditor console=$console" >&2
"${COMPOSE[@]}" "${PROFILE[@]}" ps >&2 || true
"${COMPOSE[@]}" "${PROFILE[@]}" logs --tail 40 >&2 || true
exit 1
