#!/usr/bin/env bash
# `weir get` beside curl, wget2 and aria2c on the same loopback nginx.
#
# Serves generated files from a private nginx on 127.0.0.1, then downloads
# every workload with each tool at the same concurrency, paired and
# alternating (each round runs every tool once, the order rotating), and
# checks every downloaded file byte for byte (sha256) after every run.
# Prints, per workload, the median wall and CPU (user + sys) time of each
# tool and weir's ratio to each peer.
#
# Needs: nginx (Debian package `nginx`). Peers, each skipped by name when
# missing: curl (`curl`, 7.66+ for --parallel), wget2 (`wget2`), aria2c
# (`aria2`). `apt-get install nginx curl wget2 aria2` brings them all.
#
# Usage: benches/peers.sh [ROUNDS]          (default 5)
#   WORKLOADS="2000x65536 5000x4096 8x67108864"  count x bytes, space-separated
#   CONCURRENCY=8
#   WEIR_ARGS="--no-fsync"    extra flags for weir (e.g. to compare without putting files on disk)
#   OUT_DIR=/mnt/bench        where the downloads go (default: beside the served files, under /tmp)
#
# Every run starts on a clean page cache state: `sync` (untimed) first, so
# one tool's write-back is never charged to the next. For stable numbers
# give OUT_DIR a file system of its own (a fresh ext4 on a loop device, say):
# on this project's CI VM the root file system (mounted with `discard`, 64 %
# full) made every tool 2-4x slower run after run as freed blocks piled up.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-5}
workloads=${WORKLOADS:-"2000x65536 5000x4096 8x67108864"}
conc=${CONCURRENCY:-8}
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "peers.sh: nginx is needed (apt-get install nginx)"; exit 1; }

cargo build --release --quiet -p weir-cli
weir=$PWD/target/release/weir

work=$(mktemp -d /tmp/weir-peers.XXXXXX)
port=$((20000 + RANDOM % 20000))
cleanup() {
    "$nginx_bin" -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/www" "$work/logs"
chmod 755 "$work" # nginx workers may run as another user
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
error_log $work/logs/error.log;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp;
    scgi_temp_path $work/tmp;
    server { listen 127.0.0.1:$port; root $work/www; }
}
EOF
mkdir -p "$work/tmp"
"$nginx_bin" -p "$work" -c "$work/nginx.conf"

tools=(weir)
command -v curl >/dev/null && curl --help all 2>/dev/null | grep -q -- '--parallel-immediate' && tools+=(curl) || echo "peers.sh: skipping curl (missing or without --parallel)"
command -v wget2 >/dev/null && tools+=(wget2) || echo "peers.sh: skipping wget2 (apt-get install wget2)"
command -v aria2c >/dev/null && tools+=(aria2c) || echo "peers.sh: skipping aria2c (apt-get install aria2)"

# run TOOL LIST OUT: download every URL of LIST into OUT.
run() {
    local tool=$1 list=$2 out=$3
    case $tool in
        weir) "$weir" get -q --max-concurrent "$conc" $weir_args -o "$out" -i "$list" ;;
        curl)
            awk -v d="$out" '{ n = $0; sub(".*/", "", n); print "url = \"" $0 "\""; print "output = \"" d "/" n "\"" }' "$list" >"$out.curlrc"
            curl -s --no-progress-meter --fail --parallel --parallel-immediate --parallel-max "$conc" -K "$out.curlrc" ;;
        wget2) wget2 -q --max-threads="$conc" --no-robots -P "$out" -i "$list" ;;
        aria2c) aria2c -q -j "$conc" -x 1 --allow-overwrite=true --auto-file-renaming=false -d "$out" -i "$list" ;;
    esac
}

median() { sort -g | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); if (NR % 2) print v[m]; else print (v[m] + v[m + 1]) / 2 }'; }

printf '| workload | tool | wall median (s) | CPU median (s) | weir / tool, wall | weir / tool, CPU |\n|---|---|---|---|---|---|\n'
for wl in $workloads; do
    count=${wl%x*}; size=${wl#*x}
    rm -rf "$work/www"/*
    for i in $(seq 1 "$count"); do head -c "$size" /dev/urandom >"$work/www/f$i"; done
    (cd "$work/www" && sha256sum f* | sort -k2) >"$work/want.sha"
    seq 1 "$count" | sed "s|^|http://127.0.0.1:$port/f|" >"$work/list"
    declare -A wall=() cpu=()
    for r in $(seq 1 "$rounds"); do
        n=${#tools[@]}
        for k in $(seq 0 $((n - 1))); do
            tool=${tools[$(((k + r) % n))]}
            out="${OUT_DIR:-$work}/weir-peers-out-$tool"
            rm -rf "$out" "$out.curlrc"; mkdir -p "$out"
            sync
            /usr/bin/time -f "%e %U %S" -o "$work/time" bash -c "$(declare -f run); weir=$weir conc=$conc weir_args='${WEIR_ARGS:-}'; run $tool $work/list $out" 2>"$work/err" \
                || { echo "peers.sh: $tool failed on $wl:"; cat "$work/err" "$work/time"; exit 1; }
            (cd "$out" && sha256sum f* | sort -k2) >"$work/got.sha"
            cmp -s "$work/want.sha" "$work/got.sha" || { echo "peers.sh: $tool's files differ on $wl"; exit 1; }
            read -r e u s <"$work/time"
            wall[$tool]+="$e "; cpu[$tool]+="$(echo "$u + $s" | bc) "
        done
    done
    wm=$(echo "${wall[weir]}" | tr ' ' '\n' | grep . | median)
    cm=$(echo "${cpu[weir]}" | tr ' ' '\n' | grep . | median)
    for tool in "${tools[@]}"; do
        w=$(echo "${wall[$tool]}" | tr ' ' '\n' | grep . | median)
        c=$(echo "${cpu[$tool]}" | tr ' ' '\n' | grep . | median)
        rw=$(echo "scale=2; $wm / $w" | bc); rc=$(echo "scale=2; $cm / $c" | bc)
        printf '| %s x %s B | %s | %s | %s | %s | %s |\n' "$count" "$size" "$tool" "$w" "$c" "$rw" "$rc"
    done
    unset wall cpu
done
[ -z "${OUT_DIR:-}" ] || rm -rf "$OUT_DIR"/weir-peers-out-*
