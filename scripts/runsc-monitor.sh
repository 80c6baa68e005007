#!/bin/sh
# TaskFlow's gVisor runtime wrapper: scripts/setup.sh installs it and registers it as the `path` of
# the runsc runtime in /etc/docker/daemon.json. Docker runs `<this> <runtimeArgs...> <shim args...>`.
# Our own options (removed before runsc sees the arguments):
#   --taskflow-runsc=PATH        the real runsc binary
#   --taskflow-monitor-dir=DIR   where the host prepares DIR/<container id>/debug.fifo
# When the container being created has that named pipe, the sandbox's debug log (its boot process
# only) goes into it, so the host reads gVisor's "Syscall N: denied by seccomp" lines as they happen.
# runsc 0.0~20221219 has no %ID% in --debug-log, hence the per-container path chosen here. Without
# the pipe (a container TaskFlow did not create) runsc runs unchanged.
# Opening a pipe with no reader blocks for ever, and a create that never returns wedges the
# container (even `docker rm -f` waits on it): the pipe is used only while the process that made
# it, named in DIR/<id>/reader as "<pid> <start time>", is still alive.
runsc=/usr/bin/runsc
dir=""
for a do
  shift
  case "$a" in
    --taskflow-runsc=*) runsc="${a#*=}" ;;
    --taskflow-monitor-dir=*) dir="${a#*=}" ;;
    *) set -- "$@" "$a" ;;
  esac
done
# reader_alive FILE: FILE says "<pid> <start time>" and that very process still runs.
reader_alive() {
  read -r pid start <"$1" 2>/dev/null || return 1
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  set -- ${stat##*) } # the fields after the command name; the start time is the 20th of them
  [ "${20:-}" = "$start" ]
}
create=0
id=""
for a do
  [ "$a" = create ] && create=1
  id="$a" # the shim passes the container id last
done
if [ "$create" = 1 ] && [ -n "$dir" ]; then
  case "$id" in
    *[!0-9a-f]*) ;;
    ????????????????????????????????????????????????????????????????)
      fifo="$dir/$id/debug.fifo"
      if [ -p "$fifo" ] && reader_alive "$dir/$id/reader"; then
        exec "$runsc" --debug --debug-command=boot --debug-log="$fifo" "$@"
      fi
      ;;
  esac
fi
exec "$runsc" "$@"
