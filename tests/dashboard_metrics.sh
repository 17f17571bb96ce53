#!/usr/bin/env bash
# Every exitgw_* metric the dashboard and the alert rules query is one the daemon's code
# exports (by name in control/*.cc), so a renamed metric cannot silently blank a panel.
set -euo pipefail
dashboard=$2
alerts=$3
src=$4
python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$dashboard"
used=$(grep -ohE 'exitgw_[a-z0-9_]+' "$dashboard" "$alerts" | sed -E 's/_(total)$/_total/' | sort -u)
missing=""
for m in $used; do
  grep -rqF "\"$m\"" "$src" || missing="$missing $m"
done
[ -z "$missing" ] || { echo "queried but never exported:$missing"; exit 1; }
echo "$(echo "$used" | wc -l) metrics queried, all exported"
