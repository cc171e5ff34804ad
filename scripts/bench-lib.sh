# Shared by the load benchmarks (scripts/bench-server, scripts/bench-fleet-writes): sourced, not run.
# Expects `repo` and `work` (a temporary directory) to be set and `pids` to be an array.

# Installs wrk and etcd-server from Debian if missing.
install_bench_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v etcd >/dev/null || missing+=(etcd-server)
    if [ "${#missing[@]}" -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "installing ${missing[*]} ..." >&2
        $sudo apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # URL [curl args...]
    local url="$1"; shift
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers at $url" >&2
    exit 1
}

# Starts one etcd member on loopback free ports with its data under $work; sets `etcd_port`.
start_etcd() {
    etcd_port="$(free_port)"
    local peer_port
    peer_port="$(free_port)"
    etcd --name bench --data-dir "$work/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$peer_port" --log-level error >"$work/etcd.log" 2>&1 &
    pids+=("$!")
    wait_for "http://127.0.0.1:$etcd_port/health"
}

# A copy of the example tree at $work/$1: the benchmark's overrides and history stay out of the
# repository. The plugins folder is left out (its signatures are for the repository's own trust store).
copy_example_tree() {
    cp -r "$repo/examples/potter" "$work/$1"
    rm -rf "$work/$1/plugins"
}

# wrk's figures of $work/NAME.txt as "req/s p50 p90 p99 non-2xx".
summary() {
    awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +90%/ {p90=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
         END {printf "%s %s %s %s %s", rps, p50, p90, p99, (bad == "" ? 0 : bad)}' "$work/$1.txt"
}
