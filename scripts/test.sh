#!/usr/bin/env bash
# The project's test command: bash scripts/test.sh
#
# On a fresh Debian machine, as root, it installs what the integration tests
# need (Docker, and Redis and memcached, whose binaries the tests pack into
# FROM scratch images because no image registry is reachable), starts the
# Docker daemon, then runs gofmt, go vet and go test. It is safe to run again:
# every step first checks whether its work is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

# --- packages -----------------------------------------------------------
# dpkg-query, not `command -v`: a docker CLI elsewhere on PATH is no daemon.
missing=()
for pkg in docker.io redis-server memcached; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done
if ((${#missing[@]})); then
	[[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}; run as root or install them"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Servers that the tests run as processes on this host rather than in
# containers: PostgreSQL (storage/postgres; Debian keeps its programs in
# /usr/lib/postgresql/VERSION/bin), and node with npm for dynalite
# (storage/dynamodb). A node that is already installed from elsewhere is
# kept: Debian's npm would conflict with its bundled one.
hostpkgs=()
dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q 'install ok installed' || hostpkgs+=(postgresql)
command -v node >/dev/null || hostpkgs+=(nodejs)
command -v npm >/dev/null || hostpkgs+=(npm)
# The agent's documented clients (curl, Python's standard library, node)
# run in its tests; none may be skipped for want of a tool.
command -v curl >/dev/null || hostpkgs+=(curl)
command -v python3 >/dev/null || hostpkgs+=(python3)
if ((${#hostpkgs[@]})); then
	[[ $(id -u) -eq 0 ]] || die "missing packages ${hostpkgs[*]}; run as root or install them"
	log "installing ${hostpkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${hostpkgs[@]}" >/dev/null
fi
# dynalite, storage/dynamodb's test server, from npm into the cache
# directory where integration/servers looks for it: os.UserCacheDir, or the
# temporary directory without one. integration/servers installs it the same
# way when it is missing; the version is servers.DynaliteVersion.
if [[ -n ${XDG_CACHE_HOME:-} ]]; then cache=$XDG_CACHE_HOME
elif [[ -n ${HOME:-} ]]; then cache=$HOME/.cache
else cache=${TMPDIR:-/tmp}; fi
dynalite_dir=$cache/tokencache-servers/dynalite-3.2.2
if [[ ! -f $dynalite_dir/node_modules/dynalite/package.json ]]; then
	log "npm install dynalite@3.2.2"
	npm install --prefix "$dynalite_dir" --no-audit --no-fund --loglevel=error dynalite@3.2.2 >/dev/null
fi
# amazon-cognito-identity-js, Amazon's own Cognito SRP client, which auth's
# interoperability test runs with node against oauthtest's user pool; same
# cache directory; the version is auth's cognitoJSVersion.
cognito_js_dir=$cache/tokencache-servers/amazon-cognito-identity-js-6.3.21
if [[ ! -f $cognito_js_dir/node_modules/amazon-cognito-identity-js/package.json ]]; then
	log "npm install amazon-cognito-identity-js@6.3.21"
	npm install --prefix "$cognito_js_dir" --no-audit --no-fund --loglevel=error amazon-cognito-identity-js@6.3.21 >/dev/null
fi
# The packages' own services are not needed (tests run their own copies in
# containers) and may not start here anyway; nothing to do about them.

# --- Docker daemon --------------------------------------------------------
DOCKERD_LOG=/var/log/tokencache-dockerd.log
docker_up() { docker version >/dev/null 2>&1; }
# A live dockerd, not a zombie of a killed one waiting to be reaped.
dockerd_alive() { ps -C dockerd -o stat= 2>/dev/null | grep -qv '^Z'; }
start_dockerd() {
	# A pid file left by a killed daemon makes a new one refuse to start.
	rm -f /var/run/docker.pid
	mkdir -p "$(dirname "$DOCKERD_LOG")"
	log "starting dockerd (log: $DOCKERD_LOG)"
	# vfs works on any filesystem (overlay on overlay does not);
	# --ip=127.0.0.1 publishes container ports on loopback only.
	nohup dockerd --storage-driver=vfs --ip=127.0.0.1 >>"$DOCKERD_LOG" 2>&1 </dev/null &
}
if ! docker_up; then
	# A daemon that is starting gets the same 60 s as one started here; one
	# that is gone (or dies while starting) is started once.
	started=false
	for _ in $(seq 60); do
		docker_up && break
		if ! dockerd_alive; then
			if $started; then
				tail -n 30 "$DOCKERD_LOG" >&2 || true
				die "dockerd exited while starting (log above, $DOCKERD_LOG)"
			fi
			start_dockerd
			started=true
		fi
		sleep 1
	done
	if ! docker_up; then
		tail -n 30 "$DOCKERD_LOG" >&2 || true
		die "Docker daemon did not come up within 60 s"
	fi
fi

# testcontainers-go believes it runs inside a container on this machine and
# would dial the default gateway; the Ryuk reaper image cannot be pulled, so
# tests terminate their own containers.
export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
export TESTCONTAINERS_RYUK_DISABLED=true

# Containers of an earlier run that was killed before its cleanup: remove the
# stopped ones (running ones may belong to a test run going on right now).
stale=$(docker ps -aq --filter label=org.tokencache.test-server --filter status=exited --filter status=created)
if [[ -n $stale ]]; then
	# shellcheck disable=SC2086
	docker rm -f $stale >/dev/null || true
fi

# --- checks ---------------------------------------------------------------
log "gofmt"
unformatted=$(gofmt -l . 2>&1)
if [[ -n $unformatted ]]; then
	printf '%s\n' "$unformatted" >&2
	die "gofmt: the files above need formatting (gofmt -w)"
fi

# Two modules hold the tests: the main one, and integration (its own
# module, so that testcontainers and the Docker client stay out of the
# go.mod of everyone who imports tokencache): the tests that need servers,
# and the servers package that starts them.
log "go vet"
go vet ./...
(cd integration && go vet ./...)
# The servers' own modules (integration/etcd, integration/ferretdb) are
# built, not tested; vet them with the flags integration/servers builds
# them with, so that the compiled packages are reused from the build cache
# by the tests.
while IFS= read -r mod; do
	(cd "$(dirname "$mod")" && CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOWORK=off go vet ./...)
done < <(find . -mindepth 2 -name go.mod -not -path './integration/go.mod' -not -path '*/.*' -not -path '*/node_modules/*' -not -path '*/testdata/*' | sort)

# staticcheck catches what vet does not (unused code, misuse of APIs); run
# at a pinned version from the module proxy, so a new release cannot turn a
# run red on its own.
log "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
(cd integration && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...)

log "go test"
go test -race -count=1 -timeout 40m ./...
log "go test (integration module)"
(cd integration && go test -race -count=1 -timeout 40m ./...)

# Each fuzz target runs briefly on top of its seed corpus (which go test
# above already ran); crashers it finds land in testdata/fuzz and become
# regular test cases. FUZZTIME=0 skips this step.
fuzztime=${FUZZTIME:-10s}
if [[ $fuzztime != 0 ]]; then
	grep -rl --include='*_test.go' '^func Fuzz' . | grep -Ev '^./integration/(ferretdb|etcd)/' | sort |
		while IFS= read -r file; do
			file=${file#./}
			mod=.
			if [[ $file == integration/* ]]; then
				mod=integration file=${file#integration/}
			fi
			pkg=./$(dirname "$file")
			for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$mod/$file" | cut -d' ' -f2); do
				log "fuzz $mod/${pkg#./} $target ($fuzztime)"
				(cd "$mod" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg")
			done
		done
fi
