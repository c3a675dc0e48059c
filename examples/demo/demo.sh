#!/usr/bin/env bash
# The safe-restart demo: run by `make demo` inside private IPC, PID, mount
# and network namespaces (unshare), so nothing here touches the machine's
# semaphores, processes or ports. Usage: demo.sh /path/to/safe-restart
# /path/to/bench-restart (whose prober runs beside the reload and restart).
set -euo pipefail
SR=${1:?usage: demo.sh SAFE_RESTART_BINARY BENCH_RESTART_BINARY}
BENCH=${2:?usage: demo.sh SAFE_RESTART_BINARY BENCH_RESTART_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/safe-restart-demo.XXXXXX)
conf=$work/httpd.conf
trap 'rm -rf "$work"' EXIT   # every process dies with the PID namespace

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }
serves() { curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8080/index.html && curl -kfsS -o /dev/null --max-time 2 https://127.0.0.1:8443/index.html; }
wait_serving() {
	for _ in $(seq 100); do serves 2>/dev/null && return 0; sleep 0.1; done
	echo "apache did not come up:"; tail -5 "$work/error.log"; exit 1
}
start_apache() { /usr/sbin/apache2 -f "$conf" -k start; wait_serving; }
# probed CMD...: run CMD while the benchmark's prober (a new connection
# and a GET every 2 ms) probes the HTTP listener, then print what the prober
# saw, to set beside the receipt CMD printed.
probed() {
	"$BENCH" -probe 127.0.0.1:8080/index.html > "$work/prober.out" &
	local prober=$! code=0
	run "$@" || code=$?
	kill -TERM "$prober"; wait "$prober" || true
	cat "$work/prober.out"
	return $code
}
# gone PID: wait until the killed master is reaped (bash, PID 1 here, reaps
# it when it handles SIGCHLD); until then Apache's own start would take its
# zombie for a running server ("already running").
gone() { for _ in $(seq 100); do [ -e "/proc/$1" ] || return 0; sleep 0.05; done; rm -f "$work/run/apache2.pid"; }

ip link set lo up
mkdir -p "$work/run" "$work/htdocs"
echo "hello from the demo" > "$work/htdocs/index.html"
chmod 755 "$work" "$work/htdocs"
sed "s|@DIR@|$work|g" "$here/httpd.conf.in" > "$conf"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

bold "1. Two deploys restart Apache the way many scripts do: kill -9 of the whole process group"
for i in 1 2; do
	start_apache
	master=$(cat "$work/run/apache2.pid")
	run kill -9 -- "-$master"
	gone "$master"
done
run ipcs -s
echo "Those semaphore sets are leaked: Apache's master removes them only on a clean exit."
echo "Enough of them and semget fails with ENOSPC: 'AH00023: Couldn't create the ... mutex'."

bold "2. A later start: the live server (not started by safe-restart)"
echo "(waiting 5 s so the leaked sets predate the new master by more than --lineage-window 2s)"
sleep 5
start_apache
run ipcs -s
echo "Every set has the same owner. The usual clean-up, ipcs -s | awk '/www-data/' | ipcrm,"
echo "would remove all $(ipcs -s | grep -c www-data) of them, the live server's included."

bold "3. safe-restart judges each set and says why"
run "$SR" ipc ls --service apache2 --conf "$conf" --lineage-window 2s --proof --log-format console

bold "4. The plan, then the removal (one log line per set, with its proof)"
run "$SR" ipc reap --service apache2 --conf "$conf" --lineage-window 2s --log-format console
run "$SR" ipc reap --service apache2 --conf "$conf" --lineage-window 2s --yes --log-format console
run ipcs -s

bold "5. The live server still serves HTTP (accept mutex) and TLS (ssl-cache mutex)"
for _ in 1 2 3; do serves; done && echo "OK: 6 requests served"

bold "6. For contrast, the one-liner (this kills the live server's mutexes)"
run bash -c "ipcs -s | awk '/www-data/ {print \$2}' | xargs -r -n1 ipcrm -s"
for _ in 1 2 3 4 5 6; do curl -ks -o /dev/null --max-time 1 https://127.0.0.1:8443/ || true; curl -s -o /dev/null --max-time 1 http://127.0.0.1:8080/ || true; done
echo "error log after the one-liner:"
grep -E 'AH00144|AH00146|AH00050|AH02818|Identifier removed|Invalid argument' "$work/error.log" | tail -5 || echo "(no fatal lines yet)"

bold "7. safe-restart start: stops what the dead server left, reaps its IPC, starts and verifies"
run "$SR" start apache2 --conf "$conf" --state-dir "$work/state" --log-format console
for _ in 1 2 3; do serves; done && echo "OK: serving again"

bold "8. safe-restart restart: config test, verified stop, verified start; the set count stays the same"
before=$(ipcs -s | grep -c www-data || true)
probed "$SR" restart apache2 --conf "$conf" --state-dir "$work/state" --graceful-timeout 10s --log-format console
after=$(ipcs -s | grep -c www-data || true)
serves && echo "OK: serving; semaphore sets before $before, after $after; the receipt agrees with the prober beside it"

bold "9. safe-restart reload: the config test, a trial start, USR1, the new generation verified; its receipt beside the prober"
probed "$SR" reload apache2 --conf "$conf" --state-dir "$work/state" --log-format console
run "$SR" status apache2 --conf "$conf" --state-dir "$work/state" --log-format console || true

bold "10. A certificate renewal whose new key does not match the certificate: 'apache2 -t' says Syntax OK"
cp "$work/key.pem" "$work/key.pem.good"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/key.pem" 2>/dev/null
run /usr/sbin/apache2 -f "$conf" -t
master=$(cat "$work/run/apache2.pid")
set +e
run "$SR" apache2 --conf "$conf" --state-dir "$work/state" --log-format console
code=$?
set -e
echo "exit $code: the trial start in throwaway namespaces found what the config test cannot;"
serves && echo "OK: master $master ($(cat "$work/run/apache2.pid") in the pidfile) still serves HTTP and TLS, untouched"

bold "11. For contrast, Apache's own graceful reload with the same key (what 'systemctl reload' runs)"
run /usr/sbin/apache2 -f "$conf" -k graceful
for _ in $(seq 100); do [ -e "/proc/$master" ] && ! grep -q AH00020 "$work/error.log" || break; sleep 0.05; done
serves 2>/dev/null && echo "still serving?" || echo "the site is down:"
grep -hE 'AH02565|AH00020' "$work"/*.log | tail -2
cp "$work/key.pem.good" "$work/key.pem"
