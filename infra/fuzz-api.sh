#!/usr/bin/env bash
# Property-based API testing: schemathesis generates requests from
# openapi.yaml (valid and invalid ones) and sends them to a fresh local stack;
# the run fails on any 5xx answer and on any answer the spec does not
# describe (status, content type, headers, body).
#
#   infra/fuzz-api.sh                 # make fuzz-api: 100 examples per operation
#   MAX_EXAMPLES=10 infra/fuzz-api.sh # make api-fuzz-quick (CI): a short bounded run
#
# Environment: MAX_EXAMPLES (per operation, default 100), SEED (default a
# fixed one, so that CI is reproducible; SEED=random for a new one each run),
# PHASES (schemathesis phases, default all: examples, coverage, fuzzing,
# stateful), MAX_TIME (seconds; unset by default: with it, fuzzing repeats
# until the time is spent), FUZZ_KEEP=1 keeps the work directory (stack log,
# JUnit report).
#
# It starts `infra/local run` on free ports with its own table, seeds an
# account, its admin, licenses and users with the local operator commands and
# the API, gets the admin's token, runs schemathesis on the operations that
# template.yaml routes, and stops the stack.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${MAX_EXAMPLES:-100}"
SEED="${SEED:-20260501}"
MAX_TIME="${MAX_TIME:-}"
PHASES="${PHASES:-}"
ST=.venv/bin/schemathesis
if [[ ! -x "$ST" ]]; then
	echo "fuzz-api: $ST is missing: run 'make py-tools' (requirements-dev.txt locks schemathesis)" >&2
	exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/fuzz-api.XXXXXX")"
stack_pid=""
cleanup() {
	status=$?
	if [[ -n "$stack_pid" ]] && kill -0 "$stack_pid" 2>/dev/null; then
		kill -INT "$stack_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$stack_pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$stack_pid" 2>/dev/null || true
		wait "$stack_pid" 2>/dev/null || true
	fi
	if [[ $status -ne 0 ]]; then
		echo "fuzz-api: failed; the local stack's log:" >&2
		tail -n 40 "$work/stack.log" >&2 2>/dev/null || true
	fi
	if [[ "${FUZZ_KEEP:-}" == 1 ]]; then
		echo "fuzz-api: kept $work" >&2
	else
		rm -rf "$work"
	fi
	exit $status
}
trap cleanup EXIT

echo "== build the local stack"
go build -o "$work/local" ./infra/local
mapfile -t operations < <(go run ./infra/apispec/served)

# Every part listens on a port the system picks when it binds (0), and the
# addresses are read from the banner: a port chosen here and bound later
# can be taken in between by the other parts' own connections.
export TABLE_NAME="fuzz-$$-$RANDOM"
export API_ADDR="127.0.0.1:0"
export DYNAMODB_PORT=0
export SES_PORT=0
export S3_PORT=0
export SQS_PORT=0

echo "== start the local stack (table $TABLE_NAME)"
"$work/local" run >"$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 600); do
	grep -q '^Ctrl-C stops everything' "$work/stack.log" 2>/dev/null && break
	kill -0 "$stack_pid" 2>/dev/null || { echo "fuzz-api: the local stack exited" >&2; exit 1; }
	sleep 0.2
done
grep -q '^Ctrl-C stops everything' "$work/stack.log" || { echo "fuzz-api: the local stack did not start in 120 s" >&2; exit 1; }
banner() { sed -n "s|^$1: *\(http://[^ ]*\).*|\1|p" "$work/stack.log" | head -n 1; }
api="$(banner API)"
# The operator commands talk to this stack's DynamoDB and table.
DYNAMODB_ENDPOINT="$(banner DynamoDB)"
export DYNAMODB_ENDPOINT
if [[ -z "$api" || -z "$DYNAMODB_ENDPOINT" ]]; then
	echo "fuzz-api: the stack's banner names no API or DynamoDB address" >&2
	exit 1
fi
echo "== the local stack: API $api, DynamoDB $DYNAMODB_ENDPOINT"

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

echo "== seed an account, its admin, licenses and users"
admin="admin@fuzz.example"
account="$("$work/local" account create --name Fuzz --admin "$admin" | json_field accountId)"
for tier in eco advanced pro; do
	"$work/local" licenses add --account "$account" --tier "$tier" --quantity 25 --order "fuzz-$tier" >/dev/null
done
token="$("$work/local" token "$admin" | json_field token)"
for i in 1 2 3 4 5; do
	curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$api/v1/users" \
		-d "{\"email\":\"user$i@fuzz.example\",\"firstName\":\"User\",\"lastName\":\"$i\",\"language\":\"en\",\"role\":\"user\"}"
done
curl -fsS -o /dev/null "$api/openapi.yaml"

include=()
for op in "${operations[@]}"; do include+=(--include-operation-id "$op"); done
echo "== schemathesis: ${#operations[@]} operations, $MAX_EXAMPLES examples each, seed $SEED"
extra=(--seed "$SEED")
[[ "$SEED" == random ]] && extra=()
[[ -n "$MAX_TIME" ]] && extra+=(--max-time "$MAX_TIME")
[[ -n "$PHASES" ]] && extra+=(--phases "$PHASES")
"$ST" run openapi.yaml \
	--url "$api" \
	-H "Authorization: Bearer $token" \
	--checks not_a_server_error,response_schema_conformance \
	--max-examples "$MAX_EXAMPLES" \
	--generation-database none \
	--no-color \
	--report junit --report-dir "$work" \
	"${extra[@]}" "${include[@]}"
