#!/usr/bin/env bash
# Fetch Trino (server core + the plugins the project uses) from Maven Central with mvn, once per
# user, into a cache every clone shares, and lay out the plugins the way Trino's packager does.
# The cache is $PDP_TRINO_CACHE, by default ${XDG_CACHE_HOME:-~/.cache}/pdp/trino.
# Prints the Trino home directory on stdout. Re-running is a no-op when the layout is complete.
set -euo pipefail

TRINO_VERSION=${TRINO_VERSION:-476}
# shellcheck source=scripts/trino-cache.sh
source "$(dirname "$0")/trino-cache.sh"
HOME_DIR="$CACHE/trino-server-core-$TRINO_VERSION"
PLUGINS=(opa memory tpch postgresql blackhole)
MDP=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

if [[ -f "$HOME_DIR/.complete-v2" ]]; then
  echo "$HOME_DIR"
  exit 0
fi

command -v mvn >/dev/null || { echo "fetch-trino: mvn is not on PATH" >&2; exit 1; }
dl="$CACHE/dl"
mkdir -p "$dl"

# mvn_copy ID TYPE: io.trino:ID:VERSION:TYPE into $dl; fails quietly when the registry lacks it.
mvn_copy() {
  local file="$dl/$1-$TRINO_VERSION.$2"
  [[ -s "$file" ]] && return 0
  echo "fetch-trino: downloading io.trino:$1:$TRINO_VERSION:$2 into $CACHE" >&2
  mvn -B -q "$MDP:copy" -Dartifact="io.trino:$1:$TRINO_VERSION:$2" \
      -DoutputDirectory="$dl" -Dmaven.repo.local="$CACHE/m2" >"$dl/mvn.log" 2>&1 &
  show_progress $! "fetch-trino: $1-$TRINO_VERSION.$2" "$CACHE/m2"
}

mvn_copy trino-server-core tar.gz || { cat "$dl/mvn.log" >&2; exit 1; }
# Each plugin from its own ZIP. Not every registry serves every plugin ZIP (some mirrors lack
# trino-opa, trino-postgresql and trino-blackhole); those come from the full server tarball of the
# same version, which holds every plugin already laid out.
missing=()
for p in "${PLUGINS[@]}"; do mvn_copy "trino-$p" zip || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "fetch-trino: no ZIP served for: ${missing[*]}; taking them from trino-server-$TRINO_VERSION.tar.gz" >&2
  mvn_copy trino-server tar.gz || { cat "$dl/mvn.log" >&2; exit 1; }
fi

# Unpack into a fresh directory, then move it into place, so that an interrupted run never
# leaves a half-laid-out server behind.
staging="$CACHE/staging.$$"
rm -rf "$staging"
mkdir -p "$staging"
trap 'rm -rf "$staging"' EXIT
tar -xzf "$dl/trino-server-core-$TRINO_VERSION.tar.gz" -C "$staging"
home="$staging/trino-server-core-$TRINO_VERSION"
# Optional plugins of the core tarball that the project does not use: fewer plugins start faster.
# password-authenticators stays (it holds the file group provider), and so does geospatial (the
# postgresql connector needs its Geometry type).
rm -rf "$home"/plugin/{functions-python,spooling-filesystem,exchange-filesystem,resource-group-managers,session-property-managers}
if ((${#missing[@]})); then
  # The full tarball stores a jar shared by several plugins once, as hard links between plugin
  # folders and lib/, so lib/ and every plugin come out together.
  full="trino-server-$TRINO_VERSION"
  tar -xzf "$dl/$full.tar.gz" -C "$staging" "$full/lib" "$full/plugin"
fi
for p in "${PLUGINS[@]}"; do
  mkdir -p "$home/plugin/$p"
  if [[ -s "$dl/trino-$p-$TRINO_VERSION.zip" ]]; then
    tmp=$(mktemp -d -p "$staging")
    python3 -m zipfile -e "$dl/trino-$p-$TRINO_VERSION.zip" "$tmp"
  else
    tmp="$staging/$full/plugin/$p"
  fi
  find "$tmp" -name '*.jar' -exec mv -t "$home/plugin/$p" {} +
done
touch "$home/.complete-v2"
rm -rf "$HOME_DIR"
mv "$home" "$HOME_DIR"
rm -rf "$CACHE/m2" "$dl/trino-server-$TRINO_VERSION.tar.gz"
echo "$HOME_DIR"
