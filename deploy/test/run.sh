#!/usr/bin/env bash
# make test-deploy: build the container image here and prove it serves.
#
#   bash deploy/test/run.sh [BUILD_DIR]     (BUILD_DIR: the host build, default build)
#
# Installs podman & co. if missing, makes the local Debian base image once
# (cached), builds deploy/Dockerfile, runs it with a published port and a named
# volume, waits for its HEALTHCHECK, trains from the host with the Python grpcio
# stubs and with trainctl (both from BUILD_DIR), downloads checkpoints, stops it
# with SIGTERM (exit 0 within the grace period), and starts a new container on
# the same volume, which must come up healthy with the volume's contents.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/test/containers.conf}
BASE_IMAGE=${TRAIND_BASE_IMAGE:-localhost/debian:bookworm}
IMAGE=${TRAIND_TEST_IMAGE:-localhost/traind:test}
DEPS_IMAGE=localhost/traind-build-deps:cache
NAME=traind-deploy-test-$$
VOLUME=traind-deploy-test-$$
GRACE=10         # the image's TRAIND_GRACE_PERIOD
STOP_TIMEOUT=25  # podman stop's SIGKILL deadline: well past GRACE
PYTHON=/usr/bin/python3
TRAINCTL=$BUILD/clients/c/trainctl
OUT=$(mktemp -d /tmp/traind-deploy-test.XXXXXX)
t_start=$(date +%s)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
ms_str() { printf '%d.%02d' $(($1 / 1000)) $(($1 % 1000 / 10)); }
step() { echo "== test-deploy [$(($(date +%s) - t_start))s] $*"; }
fail() {
  echo "test-deploy: FAIL: $*" >&2
  if podman container exists "$NAME" 2>/dev/null; then
    echo "---- container log ----" >&2
    podman logs "$NAME" >&2 2>&1 || true
  fi
  exit 1
}
cleanup() {
  quiet podman rm -f -v -t 0 "$NAME" "$NAME-systemd" >/dev/null 2>&1 || true
  podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  rm -rf "$OUT"
}
trap cleanup EXIT

# podman without systemd cannot arm the HEALTHCHECK timer and says so on every
# run/stop; the check itself is run below with `podman healthcheck run`.
quiet() { "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

# Polls the image's HEALTHCHECK (trainctl health inside the container).
wait_healthy() {
  local deadline=$(($(date +%s) + 60))
  # Exit status 0 = healthy (podman 4.3 prints nothing then, "unhealthy" otherwise).
  until podman healthcheck run "$NAME" >/dev/null 2>&1; do
    [ "$(podman inspect -f '{{.State.Running}}' "$NAME")" = true ] ||
      fail "the container exited ($(podman inspect -f '{{.State.ExitCode}}' "$NAME")) before healthy"
    [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy after 60 s"
    sleep 0.5
  done
}

start_container() {
  # Locked down as compose.yaml and the StatefulSet run it: read-only root, no
  # capabilities, no privilege gain.
  quiet podman run -d --name "$NAME" -p "127.0.0.1:$PORT:50051" \
    -v "$VOLUME:/var/lib/traind" -e TRAIND_WORKERS=2 \
    -v "$OUT/tokens:/run/secrets/traind_tokens:ro" \
    -e TRAIND_TOKENS_FILE=/run/secrets/traind_tokens \
    --read-only --cap-drop ALL --security-opt no-new-privileges "$IMAGE" >/dev/null
  local t0; t0=$(now_ms)
  wait_healthy
  echo "healthy after $(ms_str $(($(now_ms) - t0))) s"
  # grep, not grep -q: -q stops reading at the first match, podman logs then
  # dies of SIGPIPE, and pipefail fails the check at random.
  podman logs "$NAME" 2>&1 | grep 'listening on 0.0.0.0:50051' >/dev/null ||
    fail "no 'listening on 0.0.0.0:50051' in the log"
  [ "$(podman exec "$NAME" id -u)" = 10001 ] || fail "traind does not run as uid 10001"
}

# SIGTERM (the image's STOPSIGNAL) and a clean exit within the grace period.
stop_container() {
  local t0 took code
  t0=$(now_ms)
  quiet podman stop -t "$STOP_TIMEOUT" "$NAME" >/dev/null
  took=$(($(now_ms) - t0))
  code=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
  echo "stopped in $(ms_str "$took") s, exit code $code"
  [ "$code" = 0 ] || fail "exit code $code after SIGTERM (137 = killed after $STOP_TIMEOUT s)"
  [ "$took" -lt $((GRACE * 1000)) ] || fail "took $(ms_str "$took") s to stop (grace $GRACE s)"
  podman logs "$NAME" 2>&1 | grep 'SIGTERM: draining' >/dev/null || fail "no SIGTERM drain in the log"
  podman logs "$NAME" 2>&1 | grep 'stopped:' >/dev/null || fail "no 'stopped:' line in the log"
}

[ -x "$BUILD/server/traind" ] && [ -d "$BUILD/python/traind" ] ||
  fail "$BUILD has no traind or Python stubs: run make build first"
[ -x "$TRAINCTL" ] || fail "$TRAINCTL is missing: run make build first"

step "tools"
bash deploy/test/install-container-tools.sh

step "base image $BASE_IMAGE"
bash deploy/test/base-image.sh "$BASE_IMAGE"

step "build $IMAGE"
t0=$(date +%s)
build() {
  if ! podman build --format docker --layers -f deploy/Dockerfile --build-arg "BASE=$BASE_IMAGE" \
       --build-arg JOBS=2 "$@" . >"$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"
    fail "podman build $*"
  fi
}
# The toolchain stage, tagged: it survives the prune below, so the next run
# reuses it (only the compile and the final layers are redone).
build --target build-deps -t "$DEPS_IMAGE"
build -t "$IMAGE"
# Earlier runs' compile layers and images (untagged now) would pile up.
podman image prune -f >/dev/null
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
echo "built in $(($(date +%s) - t0)) s; runtime image $((size / 1000000)) MB ($size bytes)"

PORT=$($PYTHON -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "run on 127.0.0.1:$PORT with volume $VOLUME"
# The container listens on 0.0.0.0, so traind requires protection: tokens,
# as compose.yaml and the StatefulSet give it.
TOKEN=$(openssl rand -hex 32)
printf '%s deploy-test\n' "$TOKEN" > "$OUT/tokens"
chmod 0644 "$OUT/tokens"
podman volume create "$VOLUME" >/dev/null
start_container
# Something of the volume's that the next container must find.
podman exec "$NAME" sh -c 'echo "$HOSTNAME" > /var/lib/traind/deploy-test-marker'

step "train from the host: the Python client"
TRAIND_TOKEN=$TOKEN TRAIND_PY_STUBS=$PWD/$BUILD/python $PYTHON deploy/test/drive_session.py \
  "127.0.0.1:$PORT" "$OUT" \
  | tee "$OUT/drive.log"
sid=$(tail -1 "$OUT/drive.log")
[[ $sid =~ ^[0-9a-f]{32}$ ]] || fail "no session id from drive_session.py (got '$sid')"

step "train from the host: trainctl"
export TRAIND_SERVER=127.0.0.1:$PORT
rc=0
"$TRAINCTL" sessions 2>"$OUT/unauthenticated.txt" || rc=$?
[ "$rc" = 4 ] && grep -q UNAUTHENTICATED "$OUT/unauthenticated.txt" ||
  fail "a call without a token was not refused (exit $rc)"
export TRAIND_TOKEN=$TOKEN
"$TRAINCTL" health
"$TRAINCTL" sessions | tee "$OUT/sessions.txt"
grep -q "$sid" "$OUT/sessions.txt" || fail "trainctl sessions does not list $sid"
"$TRAINCTL" info "$sid"
"$TRAINCTL" checkpoint "$sid" -o "$OUT/python-session.safetensors"
"$TRAINCTL" train --spec clients/c/examples/digits_mlp.json --data tests/data/digits.csv \
  --epochs 5 --scale 0.0625 --seed 1 -o "$OUT/digits.safetensors" | tee "$OUT/train.log"
acc=$(sed -n 's/^final accuracy: \([0-9]*\)\..*/\1/p' "$OUT/train.log")
[ -n "$acc" ] && [ "$acc" -ge 90 ] || fail "trainctl train: final accuracy ${acc:-?}% < 90%"
TRAIND_PY_STUBS=$PWD/$BUILD/python $PYTHON - "$OUT" <<'EOF'
import os, sys
sys.path.insert(0, "tests/parity")
import safetensors_np as st
out = sys.argv[1]
for name in ("python-session.safetensors", "digits.safetensors"):
    tensors, _ = st.load(os.path.join(out, name))
    assert tensors, f"{name}: empty"
    print(f"{name}: {len(tensors)} tensors, {os.path.getsize(os.path.join(out, name))} bytes")
EOF
unset TRAIND_SERVER TRAIND_TOKEN

step "SIGTERM with a session open"
stop_container

step "restart on the same volume: the session comes back"
quiet podman rm "$NAME" >/dev/null
start_container
podman exec "$NAME" test -s /var/lib/traind/deploy-test-marker ||
  fail "the new container does not see the volume's contents"
"$TRAINCTL" --server "127.0.0.1:$PORT" health
TRAIND_TOKEN=$TOKEN "$TRAINCTL" --server "127.0.0.1:$PORT" info "$sid" | tee "$OUT/restored.txt" ||
  fail "session $sid was not restored from the volume"
grep -q '^saved: *step' "$OUT/restored.txt" || fail "trainctl info shows no save of $sid"
stop_container

step "deploy/systemd/traind.service under systemd (PID 1 in a container)"
SMOKE=$NAME-systemd
SMOKE_IMAGE=localhost/traind-systemd-smoke:test
if ! podman build --layers -f deploy/test/systemd-smoke.Dockerfile --build-arg "BASE=$BASE_IMAGE" \
     --build-arg "IMAGE=$IMAGE" -t "$SMOKE_IMAGE" deploy/systemd >"$OUT/smoke-build.log" 2>&1; then
  tail -20 "$OUT/smoke-build.log"
  fail "podman build systemd-smoke"
fi
podman image prune -f >/dev/null
quiet podman run -d --name "$SMOKE" --systemd=always "$SMOKE_IMAGE" >/dev/null
smoke() { podman exec "$SMOKE" "$@"; }
deadline=$(($(date +%s) + 60))
until smoke trainctl health >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$deadline" ] ||
    { smoke journalctl -u traind --no-pager >&2 || true; fail "traind.service not healthy after 60 s"; }
  sleep 0.5
done
user=$(smoke ps -o user= -C traind)
[ -n "$user" ] && [ "$user" != root ] || fail "traind.service runs as '${user:-?}', not a dynamic user"
smoke test -L /var/lib/traind || fail "StateDirectory /var/lib/traind is not DynamicUser's symlink"
podman cp clients/c/examples/digits_mlp.json "$SMOKE:/tmp/" && podman cp tests/data/digits.csv "$SMOKE:/tmp/"
smoke trainctl train --spec /tmp/digits_mlp.json --data /tmp/digits.csv --epochs 2 --scale 0.0625 \
  | tail -1
smoke systemctl stop traind
result=$(smoke systemctl show traind -p Result -p ExecMainStatus --value | tr '\n' ' ')
echo "traind.service as user $user: trained, stopped: Result/ExecMainStatus = $result"
[ "$result" = "success 0 " ] || { smoke journalctl -u traind --no-pager >&2; fail "unit stop: $result"; }

step "OK in $(($(date +%s) - t_start)) s (runtime image $((size / 1000000)) MB)"
