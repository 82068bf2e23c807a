#!/usr/bin/env bash
# make mutation [MODULE=policy|principals|arns|encryption|exceptions|snsbatches] [MUTANTS="name ..."] [JOBS=2]
# Mutation testing of clguard/rules with mutmut (docs/architecture.md §6), in a staged copy under
# build/mutation so that the work tree is never mutated. Prints the score of each module and every
# surviving mutant; exits 1 when the score of the run is under 90% or a mutant survives that is
# not listed, with its reason, in scripts/mutation/equivalent.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
module="${MODULE:-}"
jobs="${JOBS:-2}"
stage="$root/build/mutation"
rm -rf "$stage"
mkdir -p "$stage/src"
cp -r "$root/layers/shared/clguard" "$stage/src/clguard"
cp -r "$root/tests" "$root/localaws" "$root/events" "$stage/"
cp "$root/scripts/mutation/pyproject.toml" "$stage/pyproject.toml"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
cd "$stage"
filter=()
if [[ -n "$module" ]]; then filter=("clguard.rules.${module}.*"); fi
if [[ -n "${MUTANTS:-}" ]]; then read -r -a filter <<< "$MUTANTS"; fi  # e.g. the survivors of a run
start=$(date +%s)
"$root/.venv/bin/mutmut" run --max-children "$jobs" "${filter[@]}" > "$stage/run.log" 2>&1 || {
    tail -n 40 "$stage/run.log"; exit 1; }
echo "mutmut run: $(( $(date +%s) - start )) s on ${jobs} workers"
exec "$root/.venv/bin/python" "$root/scripts/mutation/score.py" "$stage/mutants" "$root/scripts/mutation/equivalent.txt" "$module"
