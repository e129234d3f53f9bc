#!/usr/bin/env bash
# Create or update the AgentCore runtime that runs the worker image (docs/agentcore.md):
#
#   IMAGE_URI=… ROLE_ARN=… AWS_REGION=us-west-2 scripts/agentcore-deploy.sh create
#   IMAGE_URI=… ROLE_ARN=… AWS_REGION=us-west-2 scripts/agentcore-deploy.sh update
#   scripts/agentcore-deploy.sh --dry-run create     # print the exact aws command, run nothing
#
# Options (after or before the action):
#   --dry-run          print the aws command(s) instead of running them
#   --wait             after create/update, poll get-agent-runtime until READY (or *_FAILED)
#   --env NAME=VALUE   one more environment variable for the runtime (repeatable; wins over
#                      the defaults below)
#
# Environment:
#   IMAGE_URI                  the image in ECR, e.g. the line scripts/build-and-push-ecr.sh prints (required)
#   ROLE_ARN                   the execution role (required)
#   AWS_REGION or AWS_DEFAULT_REGION  (required)
#   AGENTCORE_RUNTIME_NAME     default agentdispatch_worker (letters, digits, _; no hyphen)
#   AGENTCORE_RUNTIME_ID       the runtime to update; a real `update` finds it by name when unset
#   AGENTCORE_PROTOCOL         AgentCore's serverProtocol: HTTP (default, port 8080), A2A
#                              (port 9000), MCP (port 8000, /mcp) or AGUI (port 8080); all but
#                              HTTP set AGENTDISPATCH_WORKER_PROTOCOL to match (a2a, mcp, agui)
#   AGENTCORE_SESSION_STORAGE  managed session storage mount, default /mnt/data (sets
#                              AGENTDISPATCH_SESSION_DIR to it); "none" for none
#   AGENTCORE_SUBNETS, AGENTCORE_SECURITY_GROUPS   comma-separated ids: VPC mode (both needed);
#                              unset: PUBLIC
#   AGENTCORE_IDLE_TIMEOUT_SECONDS  default 900; AGENTCORE_MAX_LIFETIME_SECONDS  default 28800
#   AGENTCORE_DESCRIPTION      default "agentdispatch-worker"
#
# Every create/update sends the whole configuration (UpdateAgentRuntime replaces it, it does not
# merge). Progress goes to stderr; stdout is the runtime ARN, or with --dry-run the commands.
set -euo pipefail

say() { printf 'agentcore-deploy: %s\n' "$*" >&2; }
die() {
  printf 'agentcore-deploy: error: %s\n' "$*" >&2
  exit 1
}

dry_run=0 wait=0 action="" extra_env=()
while (($#)); do
  case $1 in
    --dry-run) dry_run=1 ;;
    --wait) wait=1 ;;
    --env)
      [[ $# -ge 2 ]] || die "--env needs NAME=VALUE"
      extra_env+=("$2")
      shift
      ;;
    --env=*) extra_env+=("${1#--env=}") ;;
    create | update)
      [[ -z $action ]] || die "one action at a time (got $action and $1)"
      action=$1
      ;;
    -h | --help) sed -n '2,33p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (create, update, --dry-run, --wait, --env NAME=VALUE; --help)" ;;
  esac
  shift
done
[[ -n $action ]] || die "say what to do: create or update (--help for the settings)"

region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
[[ -n $region ]] || die "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), e.g. AWS_REGION=us-west-2"
image="${IMAGE_URI:-}"
[[ -n $image ]] || die "IMAGE_URI is not set: the ECR image URI that scripts/build-and-push-ecr.sh prints"
[[ $image =~ ^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/ ]] ||
  die "IMAGE_URI '$image' is not an ECR image URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG)"
role="${ROLE_ARN:-}"
[[ -n $role ]] || die "ROLE_ARN is not set: the execution role's ARN (docs/agentcore.md, 'The execution role')"
[[ $role =~ ^arn:aws(-[a-z-]+)?:iam::[0-9]{12}:role/.+ ]] ||
  die "ROLE_ARN '$role' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
name="${AGENTCORE_RUNTIME_NAME:-agentdispatch_worker}"
[[ $name =~ ^[a-zA-Z][a-zA-Z0-9_]{0,47}$ ]] ||
  die "AGENTCORE_RUNTIME_NAME '$name': a letter, then up to 47 letters, digits or '_' (AgentCore refuses '-')"
protocol="${AGENTCORE_PROTOCOL:-HTTP}"
protocol=$(printf '%s' "$protocol" | tr '[:lower:]' '[:upper:]') # bash 3.2 (macOS) has no ${x^^}
case $protocol in
  HTTP | A2A | MCP | AGUI) ;;
  *) die "AGENTCORE_PROTOCOL '$protocol': the worker serves HTTP, A2A, MCP or AGUI" ;;
esac
storage="${AGENTCORE_SESSION_STORAGE:-/mnt/data}"
[[ $storage == none || $storage =~ ^/mnt/[a-zA-Z0-9._-]+/?$ ]] ||
  die "AGENTCORE_SESSION_STORAGE '$storage': one folder under /mnt (e.g. /mnt/data), or none"
idle="${AGENTCORE_IDLE_TIMEOUT_SECONDS:-900}"
lifetime="${AGENTCORE_MAX_LIFETIME_SECONDS:-28800}"
for pair in "AGENTCORE_IDLE_TIMEOUT_SECONDS=$idle" "AGENTCORE_MAX_LIFETIME_SECONDS=$lifetime"; do
  value=${pair#*=}
  if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 60 || value > 28800)); then
    die "${pair%%=*} '$value': whole seconds from 60 to 28800"
  fi
done
description="${AGENTCORE_DESCRIPTION:-agentdispatch-worker}"

# JSON string of $1: quotes, backslashes and control characters escaped.
json_str() {
  local s=$1 out="" c i code
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      '"') out+='\"' ;;
      "\\") out+="\\\\" ;;
      $'\n') out+='\n' ;;
      $'\t') out+='\t' ;;
      $'\r') out+='\r' ;;
      *)
        printf -v code '%d' "'$c"
        if ((code < 32)); then printf -v c '\\u%04x' "$code"; fi
        out+=$c
        ;;
    esac
  done
  printf '"%s"' "$out"
}

json_list() { # comma-separated ids -> JSON array
  local IFS=, item out="" sep=""
  for item in $1; do
    [[ -n $item ]] || continue
    out+="$sep$(json_str "$item")"
    sep=","
  done
  printf '[%s]' "$out"
}

# The runtime's environment: the worker's settings that AgentCore's contract decides, then --env.
env_names=() env_values=()
set_env() {
  local i
  for i in "${!env_names[@]}"; do
    if [[ ${env_names[i]} == "$1" ]]; then
      env_values[i]=$2
      return
    fi
  done
  env_names+=("$1")
  env_values+=("$2")
}
[[ $storage == none ]] || set_env AGENTDISPATCH_SESSION_DIR "$storage"
# The worker listens where AgentCore calls for that protocol (its port follows the protocol).
[[ $protocol == HTTP ]] || set_env AGENTDISPATCH_WORKER_PROTOCOL "$(printf '%s' "$protocol" | tr '[:upper:]' '[:lower:]')"
for pair in ${extra_env[@]+"${extra_env[@]}"}; do
  [[ $pair == *=* && ${pair%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]{0,99}$ ]] ||
    die "--env '$pair': NAME=VALUE with a variable name of letters, digits and '_'"
  set_env "${pair%%=*}" "${pair#*=}"
done
((${#env_names[@]} <= 50)) || die "${#env_names[@]} environment variables; AgentCore takes at most 50"

if [[ -n ${AGENTCORE_SUBNETS:-} || -n ${AGENTCORE_SECURITY_GROUPS:-} ]]; then
  [[ -n ${AGENTCORE_SUBNETS:-} && -n ${AGENTCORE_SECURITY_GROUPS:-} ]] ||
    die "VPC mode needs both AGENTCORE_SUBNETS and AGENTCORE_SECURITY_GROUPS"
  network="{\"networkMode\": \"VPC\", \"networkModeConfig\": {\"subnets\": $(json_list "$AGENTCORE_SUBNETS"), \"securityGroups\": $(json_list "$AGENTCORE_SECURITY_GROUPS")}}"
else
  network='{"networkMode": "PUBLIC"}'
fi

config_json() { # the request body of create (name) or update (id)
  local first=$1 i sep=""
  printf '{\n  %s,\n' "$first"
  printf '  "description": %s,\n' "$(json_str "$description")"
  printf '  "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": %s}},\n' "$(json_str "$image")"
  printf '  "roleArn": %s,\n' "$(json_str "$role")"
  printf '  "networkConfiguration": %s,\n' "$network"
  printf '  "protocolConfiguration": {"serverProtocol": "%s"},\n' "$protocol"
  printf '  "lifecycleConfiguration": {"idleRuntimeSessionTimeout": %d, "maxLifetime": %d},\n' "$idle" "$lifetime"
  if [[ $storage != none ]]; then
    printf '  "filesystemConfigurations": [{"sessionStorage": {"mountPath": %s}}],\n' "$(json_str "$storage")"
  fi
  printf '  "environmentVariables": {'
  for i in "${!env_names[@]}"; do
    printf '%s\n    %s: %s' "$sep" "$(json_str "${env_names[i]}")" "$(json_str "${env_values[i]}")"
    sep=","
  done
  [[ -z $sep ]] || printf '\n  '
  printf '}\n}'
}

# One argument in single quotes when it needs quoting, so the printed line runs as printed.
shell_quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

print_cmd() {
  local arg sep=""
  for arg in "$@"; do
    printf '%s%s' "$sep" "$(shell_quote "$arg")"
    sep=" "
  done
  printf '\n'
}

if ((!dry_run)); then
  command -v aws >/dev/null 2>&1 || die "the AWS CLI ('aws') is not on PATH; install AWS CLI v2 and configure credentials"
fi

runtime_id="${AGENTCORE_RUNTIME_ID:-}"
if [[ $action == update && -z $runtime_id ]]; then
  lookup=(aws bedrock-agentcore-control list-agent-runtimes --region "$region"
    --query "agentRuntimes[?agentRuntimeName=='$name'].agentRuntimeId | [0]" --output text)
  ((!dry_run)) || die "--dry-run update needs AGENTCORE_RUNTIME_ID (a real run finds it with: $(print_cmd "${lookup[@]}"))"
  say "step lookup: the runtime named $name"
  runtime_id=$("${lookup[@]}") || die "step lookup: 'aws bedrock-agentcore-control list-agent-runtimes' failed"
  [[ -n $runtime_id && $runtime_id != None ]] ||
    die "step lookup: no runtime named $name in $region; create it first (scripts/agentcore-deploy.sh create)"
fi
if [[ $action == update ]]; then
  [[ $runtime_id =~ ^[a-zA-Z][a-zA-Z0-9_]{0,99}-[a-zA-Z0-9]{10}$ ]] ||
    die "AGENTCORE_RUNTIME_ID '$runtime_id' is not a runtime id (NAME-0123456789)"
  body=$(config_json "\"agentRuntimeId\": $(json_str "$runtime_id")")
else
  body=$(config_json "\"agentRuntimeName\": $(json_str "$name")")
fi

cmd=(aws bedrock-agentcore-control "$action-agent-runtime" --region "$region"
  --cli-input-json "$body" --query '[agentRuntimeArn, agentRuntimeId]' --output text)
if ((dry_run)); then
  print_cmd "${cmd[@]}"
  if ((wait)) && [[ -n $runtime_id ]]; then
    print_cmd aws bedrock-agentcore-control get-agent-runtime --region "$region" \
      --agent-runtime-id "$runtime_id" --query status --output text
  elif ((wait)); then
    echo "# then, every 5 s until READY: aws bedrock-agentcore-control get-agent-runtime --region $region --agent-runtime-id <the id printed> --query status --output text"
  fi
  exit 0
fi

say "step $action: aws bedrock-agentcore-control $action-agent-runtime ($name, $image)"
answer=$("${cmd[@]}") || die "step $action: 'aws bedrock-agentcore-control $action-agent-runtime' failed"
read -r arn runtime_id <<<"$answer"
[[ $arn == arn:* && -n $runtime_id ]] || die "step $action: unexpected answer '$answer'"
say "runtime $runtime_id: $action requested"

if ((wait)); then
  say "step wait: aws bedrock-agentcore-control get-agent-runtime until READY"
  for ((tries = 0; ; tries++)); do
    status=$(aws bedrock-agentcore-control get-agent-runtime --region "$region" \
      --agent-runtime-id "$runtime_id" --query status --output text) ||
      die "step wait: 'aws bedrock-agentcore-control get-agent-runtime' failed"
    case $status in
      READY) break ;;
      *_FAILED) die "step wait: runtime $runtime_id is $status; 'aws bedrock-agentcore-control get-agent-runtime --agent-runtime-id $runtime_id' says why (failureReason)" ;;
    esac
    ((tries < 120)) || die "step wait: runtime $runtime_id still $status after 10 minutes"
    sleep 5
  done
  say "runtime $runtime_id is READY"
fi
printf '%s\n' "$arn"
