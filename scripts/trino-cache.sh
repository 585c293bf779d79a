# Sourced by fetch-trino.sh and trino-cli: where Trino is cached, and a download's progress.
# One cache per user, shared by every clone: $PDP_TRINO_CACHE, by default
# ${XDG_CACHE_HOME:-~/.cache}/pdp/trino.
CACHE=${PDP_TRINO_CACHE:-"${XDG_CACHE_HOME:-$HOME/.cache}/pdp/trino"}

# show_progress PID LABEL DIR: wait for the download PID (mvn, quiet) to end, saying how many
# MB have arrived under DIR: on a terminal one line rewritten each second, else a line every
# 10 s. Returns the download's exit status.
show_progress() {
  local pid=$1 label=$2 dir=$3 start seconds=0 mb
  start=$(du -sk "$dir" 2>/dev/null | cut -f1 || true)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    seconds=$((seconds + 1))
    mb=$(du -sk "$dir" 2>/dev/null | awk -v s="${start:-0}" '{printf "%.1f", ($1 - s) / 1024}')
    if [[ -t 2 ]]; then
      printf '\r%s: %s MB downloaded' "$label" "${mb:-0.0}" >&2
    elif ((seconds % 10 == 0)); then
      echo "$label: ${mb:-0.0} MB downloaded so far" >&2
    fi
  done
  [[ -t 2 ]] && ((seconds > 0)) && printf '\n' >&2
  wait "$pid"
}
