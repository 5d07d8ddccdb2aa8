# shellcheck shell=bash
# What the packaging tests (packaging/test, packaging/test-release) share: a loopback registry
# and a busybox image pushed to it. Sourced; each caller defines `die` and cleans up after
# itself (kill "$registry_pid", remove its images).

# start_registry DIR: a CNCF distribution registry (scripts/test-env installs it) on a free
# loopback port, storing under DIR; sets $port and $registry_pid.
start_registry() {
    local dir=$1
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$dir/registry"
    cat >"$dir/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: 127.0.0.1:$port
  secret: tidewatch-packaging-test
YAML
    docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    registry_pid=$!
    for _ in $(seq 50); do
        curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && return 0
        sleep 0.2
    done
    die "the registry did not start: $(cat "$dir/registry.log")"
}

# build_push DIR IMAGE VERSION: builds IMAGE FROM scratch with a static busybox that sleeps,
# ENV VERSION=VERSION (a new digest per version), pushes it and prints its image id.
build_push() {
    local context=$1/context
    mkdir -p "$context"
    cp /bin/busybox "$context/busybox"
    cat >"$context/Dockerfile" <<DOCKERFILE
FROM scratch
COPY busybox /bin/busybox
ENV VERSION=$3
ENTRYPOINT ["/bin/busybox", "sleep", "86400"]
DOCKERFILE
    docker build -q -t "$2" "$context" >/dev/null
    docker push -q "$2" >/dev/null
    docker image inspect -f '{{.Id}}' "$2"
}
