#!/usr/bin/env bash
# Records what the pinned agent CLIs print (stdout and stderr, as sf's run logs hold them)
# against sf-model-server, into crates/sf-adapters/tests/fixtures/<cli>/recorded/<case>.jsonl,
# for the parser tests. Run it again after bumping a version in tests/agents/package.json:
#
#   npm install --prefix tests/agents --no-save && bash tests/agents/record.sh
#
# Each case is a script of model turns (see tests/bin/model_server.rs). No network: the CLIs
# talk only to the server on loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/tests/agents/node_modules/.bin
out=$root/crates/sf-adapters/tests/fixtures
cargo build -q -p sf-tests --bin sf-model-server
server_bin=${CARGO_TARGET_DIR:-$root/target}/debug/sf-model-server

work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# record CLI CASE SCRIPT_JSON [KEY [VAR=VALUE...]]: one run of CLI in a fresh repository and
# HOME (KEY empty: no API key), with the extra variables
record() {
  local cli=$1 case=$2 script=$3 key=${4-sk-sf-test}
  shift $(($# < 4 ? $# : 4))
  local dir=$work/$cli-$case
  mkdir -p "$dir/home" "$dir/repo"
  git -C "$dir/repo" init -q -b main
  git -C "$dir/repo" -c user.name=sf -c user.email=sf@sf.invalid commit -q --allow-empty -m initial
  echo "$script" > "$dir/script.json"
  "$server_bin" --script "$dir/script.json" > "$dir/server.out" &
  server=$!
  until grep -q listening "$dir/server.out" 2>/dev/null; do sleep 0.05; done
  local base
  base=http://$(sed -n 's/^listening on //p' "$dir/server.out")
  mkdir -p "$dir/home/.codex"
  cat > "$dir/home/.codex/config.toml" <<TOML
model = "sf-test-model"
model_provider = "mock"
[model_providers.mock]
name = "mock"
base_url = "$base/v1"
env_key = "MOCK_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
TOML
  local opencode_config
  opencode_config='{"autoupdate":false,"share":"disabled","provider":{"mock":{"npm":"@ai-sdk/openai-compatible","name":"mock","options":{"baseURL":"'$base'/v1","apiKey":"{env:MOCK_API_KEY}"},"models":{"sf-test-model":{"name":"sf-test-model"}}}}}'
  local -a env=(env -i PATH=/usr/bin:/bin HOME="$dir/home" LANG=C.UTF-8
    GIT_AUTHOR_NAME=sf GIT_AUTHOR_EMAIL=sf@sf.invalid GIT_COMMITTER_NAME=sf GIT_COMMITTER_EMAIL=sf@sf.invalid
    ANTHROPIC_BASE_URL="$base" IS_SANDBOX=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1
    OPENCODE_CONFIG_CONTENT="$opencode_config" OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1)
  if [ -n "$key" ]; then env+=(ANTHROPIC_API_KEY="$key" MOCK_API_KEY="$key"); fi
  env+=("$@")
  local -a argv
  case $cli in
    claude) argv=("$bin/claude" -p --output-format stream-json --verbose --dangerously-skip-permissions) ;;
    codex) argv=("$bin/codex" exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check -c allow_login_shell=false -) ;;
    opencode) argv=("$bin/opencode" run --format json --model mock/sf-test-model) ;;
  esac
  mkdir -p "$out/$cli/recorded"
  (cd "$dir/repo" && echo "Add a note to the repository and commit it." |
    timeout 120 "${env[@]}" "${argv[@]}" > "$out/$cli/recorded/$case.jsonl" 2>&1) || true
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  echo "recorded $cli/$case ($(wc -l < "$out/$cli/recorded/$case.jsonl") lines)"
}

success='[{"bash": "echo note > note.txt && git add note.txt && git commit -qm note && echo committed"}, {"text": "Done: note.txt is committed."}]'
for cli in claude codex opencode; do
  record "$cli" success "$success"
done
# A 429: Claude Code and Codex give up at once. OpenCode waits out `retry-after` and tries
# again, silently: with the reset 1 s ahead it gives up after about 5 tries.
for cli in claude codex; do
  record "$cli" usage_limit '[{"status": 429, "reset_secs": 5400}]'
done
record opencode usage_limit '[{"status": 429, "reset_secs": 1}]'
record claude not_logged_in "$success" ""
# Claude Code retries a 401 or a dropped stream ten times over about three minutes, an
# `api_retry` line each: two are enough to record
record claude unauthorized '[{"status": 401}]' sk-sf-test CLAUDE_CODE_MAX_RETRIES=2
record codex unauthorized '[{"status": 401}]'
record opencode unauthorized '[{"status": 401}]'
record claude cut '[{"cut": true}]' sk-sf-test CLAUDE_CODE_MAX_RETRIES=2
record codex cut '[{"cut": true}]'
# OpenCode retries a dropped stream with growing delays (2, 4, 8 ... s) and prints nothing
# until it gives up, about a minute later
record opencode cut '[{"cut": true}]'
