#!/usr/bin/env bash
# Watches the test run for a rare hang seen in CI: a Node process whose main thread sleeps on a
# futex (blocked outside JavaScript, so timers and diagnostic reports never run) and uses no CPU.
# Normal idle Node waits in epoll, not on a futex. A process found so for HANG_CHECKS checks in a
# row (HANG_INTERVAL_S apart) gets its native thread stacks printed once, from gdb when the machine
# has it, else from /proc, to stderr, so the CI log carries evidence. It changes nothing and kills
# nothing. Usage: scripts/hang-watchdog.sh <pid to outlive> &
set -u
WATCH=${1:?pid}
HANG_INTERVAL_S=${HANG_INTERVAL_S:-60}
HANG_CHECKS=${HANG_CHECKS:-3}
declare -A seen cpu reported
while kill -0 "$WATCH" 2>/dev/null; do
  sleep "$HANG_INTERVAL_S"
  for p in $(pgrep -x node); do
    w=$(cat /proc/$p/wchan 2>/dev/null) || continue
    t=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null) || continue
    if [[ $w == futex* && ${cpu[$p]:-x} == "$t" ]]; then seen[$p]=$(( ${seen[$p]:-0} + 1 )); else seen[$p]=0; fi
    cpu[$p]=$t
    if (( ${seen[$p]} >= HANG_CHECKS )) && [[ -z ${reported[$p]:-} ]]; then
      reported[$p]=1
      {
        echo "== hang-watchdog: pid $p main thread on a futex with no CPU for $((HANG_CHECKS * HANG_INTERVAL_S)) s: $(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-200)"
        for task in /proc/$p/task/*; do echo "-- thread $(basename $task) $(cat $task/comm) state $(awk '{print $3}' $task/stat) wchan $(cat $task/wchan)"; done
        if command -v gdb >/dev/null; then
          timeout 60 gdb -p "$p" -batch -nx -ex 'set pagination off' -ex 'thread apply all bt 30' 2>&1 | grep -E '^(Thread|#)' | cut -c1-300 | head -400
        else
          cat /proc/$p/task/*/stack 2>/dev/null | head -100
        fi
        echo "== hang-watchdog: end of pid $p"
      } >&2
    fi
  done
done
