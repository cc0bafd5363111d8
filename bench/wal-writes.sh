#!/usr/bin/env bash
# Write system calls per stored alarm: how many pages an alarm costs the WAL, counted rather than timed, so that the
# host's noise (steal, a throttled core) does not hide a change in what the writer writes. Runs figure 5 (closed-loop
# durable alarms) once, attaches strace to the gateway for 3 s inside its first repetition (of 5 s), and counts the alarm rows
# stored in that window from a read-only connection to the gateway's file.
#
#   npm run bench:wal-writes -- [label]     (needs strace and sqlite3: apt-get install strace sqlite3)
#
# Prints: alarms stored in the window, pwrite64 and fsync calls of every thread (the writer's WAL frames, header and
# page each, and the checkpointer's copies to the database file), and their ratios. strace slows the gateway; the
# ratio, not the rate, is the result.
set -uo pipefail
label=${1:-run}
for tool in strace sqlite3; do
  command -v "$tool" >/dev/null || { echo "wal-writes: $tool is missing: apt-get install -y $tool" >&2; exit 1; }
done
log=$(mktemp /tmp/eldergate-wal-writes-XXXXXX.log)
out=$(mktemp -d /tmp/eldergate-wal-writes-XXXXXX)
npx tsx bench/run.ts --only=5 --systems=eldergate --no-profile --out="$out" >"$log" 2>&1 &
bench=$!
for _ in $(seq 1 120); do
  sleep 0.5
  grep -q "background devices connected" "$log" && break
done
sleep 1
pid=$(pgrep -f "dist/main.js" | head -1)
db=$(readlink /proc/"$pid"/fd/* 2>/dev/null | grep -m1 'eldergate\.db$')
count() { sqlite3 -readonly "$db" "select count(*) from observations where life_safety = 1"; }
n0=$(count)
timeout -s INT 3 strace -f -c -e trace=pwrite64,fsync,fdatasync -p "$pid" -o "$out/strace.txt" 2>/dev/null || true
n1=$(count)
wait "$bench" || { echo "wal-writes: the bench failed, see $log" >&2; exit 1; }
alarms=$((n1 - n0))
pw=$(awk '$NF == "pwrite64" {print $4}' "$out/strace.txt")
fs=$(awk '$NF == "fsync" || $NF == "fdatasync" {s += $4} END {print s + 0}' "$out/strace.txt")
echo "$label: $alarms alarms stored in 3 s under strace; pwrite64 $pw ($(echo "scale=2; $pw / $alarms" | bc) an alarm); fsync $fs ($(echo "scale=0; $alarms / $fs" | bc) alarms a commit)"
