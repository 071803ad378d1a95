#!/usr/bin/env bash
# CI performance gate: run the quick suite, compare it with a baseline report,
# write a markdown comment and a JUnit file, exit with the gate's code
# (0 pass, 1 regression, 2 bad input, 3 host cannot run the suite, 4 a report
# too noisy to judge: rerun it; `-- --noisy warn` judges anyway).
#
#   scripts/ci-gate.sh BASELINE_DIR [OUT_DIR] [-- extra `compare` options]
#
# A gate file `gate.toml` next to the baseline's report.json is used when present.
set -uo pipefail
cd "$(dirname "$0")/.."

baseline=${1:?usage: scripts/ci-gate.sh BASELINE_DIR [OUT_DIR] [-- compare options]}
out=${2:-reports/ci-$(date -u +%Y%m%dT%H%M%SZ)}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift

cargo build --release --quiet || exit 2
bin=target/release/overlaybench

"$bin" run --suite quick --no-progress --out "$out/current" || exit $?

gate=()
[ -f "$baseline/gate.toml" ] && gate=(--gate-file "$baseline/gate.toml")

"$bin" compare "$baseline" "$out/current" "${gate[@]}" "$@" --format markdown --output "$out/gate.md"
code=$?
"$bin" compare "$baseline" "$out/current" "${gate[@]}" "$@" --format junit --output "$out/gate.xml" >/dev/null
"$bin" compare "$baseline" "$out/current" "${gate[@]}" "$@" --format text
echo "gate: $out/gate.md, $out/gate.xml (exit $code)" >&2
exit $code
