#!/bin/sh
# Drafts and updates policies with a real model server for every AgentDojo user task, and replays
# the benchmark's ground-truth sessions through them (utility and attack success). For machines
# with a GPU (docs/llm.md says how to serve a model with vLLM or llama-server):
#
#   scripts/llm-smoke.sh http://127.0.0.1:8000/v1 Qwen/Qwen2.5-7B-Instruct
#
# Environment: TOOLWARDEN (the binary, default build/toolwarden), TOOLWARDEN_LLM_PROTOCOL
# (openai, llama.cpp, anthropic, ollama), TOOLWARDEN_LLM_API_KEY, SUITES (default all four),
# UPDATE (narrow-only, ask, any or off; default narrow-only), OUT (a directory for the JSON
# reports, default a temporary one). Two runs per suite: the drafted rules alone (Progent's
# "LLM-generated policy"), and after the hand-written policy in policies/agentdojo/.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 URL MODEL" >&2
  exit 2
fi
url=$1
model=$2
here=$(cd "$(dirname "$0")/.." && pwd)
tw=${TOOLWARDEN:-$here/build/toolwarden}
suites=${SUITES:-banking slack travel workspace}
update=${UPDATE:-narrow-only}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
cd "$here"
for suite in $suites; do
  base="$out/$suite.drafted.policy"
  printf 'policy drafted_%s;\n\ntools "%s";\n' "$suite" "$here/bench/agentdojo/data/$suite.tools.json" \
    >"$base"
  for run in drafted with-policy; do
    policy=$base
    [ "$run" = with-policy ] && policy="policies/agentdojo/$suite.policy"
    "$tw" replay --suite "$suite" --policy "$policy" --llm "$url" --model "$model" \
      --update "$update" --json "$out/$suite.$run.json"
  done
done
echo "reports: $out"
