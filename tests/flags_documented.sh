#!/usr/bin/env bash
# Every daemon flag appears in conf/exitgw.flags (which documents each), and the file names
# no flag the daemon does not have.
set -euo pipefail
exitgw=$1
conf=$2
help=$("$exitgw" --help 2>&1 | sed -n 's/^    -\([a-z0-9_]*\) .*/\1/p' | sort -u)
file=$(sed -n 's/^--\([a-z0-9_]*\)=.*/\1/p' "$conf" | sort -u)
missing=$(comm -23 <(echo "$help") <(echo "$file"))
unknown=$(comm -13 <(echo "$help") <(echo "$file"))
[ -z "$missing" ] || { echo "flags not documented in $conf: $missing"; exit 1; }
[ -z "$unknown" ] || { echo "$conf names flags the daemon lacks: $unknown"; exit 1; }
echo "$(echo "$help" | wc -l) flags, all documented"
