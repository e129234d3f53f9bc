#!/usr/bin/env bash
# Build the worker image for AgentCore Runtime and push it to Amazon ECR.
#
#   AWS_REGION=us-west-2 scripts/build-and-push-ecr.sh
#
# Environment:
#   AWS_REGION or AWS_DEFAULT_REGION  the region of the ECR repository (required)
#   ECR_REPOSITORY                    repository name (default: agentdispatch-worker-agentcore)
#   IMAGE_TAG                         image tag (default: latest)
#   PLATFORM                          buildx platform (default: linux/arm64, what AgentCore runs)
#   FRAMEWORKS                        passed to the build as --build-arg FRAMEWORKS when set
#   RUN_TESTS=1                       run scripts/test.sh first (off by default: the whole suite
#                                     takes minutes, installs test tools and all six framework
#                                     venvs, and proves nothing about the image that CI did not)
#
# Steps: check tools and region, (the tests,) find the account, create the repository when it
# does not exist, log docker in to ECR, build with buildx for PLATFORM and push. Progress goes to
# stderr; the only line on stdout, and so the last one, is the pushed image URI, ready for
# target.details.ecrImageUri.
set -euo pipefail

say() { printf 'build-and-push-ecr: %s\n' "$*" >&2; }
die() {
  printf 'build-and-push-ecr: error: %s\n' "$*" >&2
  exit 1
}

region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
repository="${ECR_REPOSITORY:-agentdispatch-worker-agentcore}"
tag="${IMAGE_TAG:-latest}"
platform="${PLATFORM:-linux/arm64}"

command -v aws >/dev/null 2>&1 ||
  die "the AWS CLI ('aws') is not on PATH; install AWS CLI v2 and configure credentials"
# `aws ecr get-login-password` (the login step) exists in v2 and in v1 from 1.17.10 on; older v1
# releases only have the removed `aws ecr get-login`.
aws_version=""
if [[ "$(aws --version 2>&1)" =~ aws-cli/([0-9][0-9.]*) ]]; then
  aws_version="${BASH_REMATCH[1]}"
fi
IFS=. read -r aws_major aws_minor aws_patch _ <<<"${aws_version:-0.0.0}"
if [[ ${aws_major:-0} -lt 2 ]]; then
  if [[ ${aws_major:-0} -eq 1 && ( ${aws_minor:-0} -gt 17 || ( ${aws_minor:-0} -eq 17 && ${aws_patch:-0} -ge 10 ) ) ]]; then
    say "AWS CLI $aws_version (v1) found: it has 'aws ecr get-login-password', so it works; v2 is AWS's supported CLI"
  else
    die "AWS CLI ${aws_version:-of unknown version} found ('aws --version'); the login step needs 'aws ecr get-login-password', which v1 has only from 1.17.10 on: install AWS CLI v2"
  fi
fi
command -v docker >/dev/null 2>&1 ||
  die "'docker' is not on PATH; install Docker with the buildx plugin"
[[ -n "$region" ]] || die "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), e.g. AWS_REGION=us-west-2"
docker buildx version >/dev/null 2>&1 ||
  die "'docker buildx' is not available; install the Docker buildx plugin"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ "${RUN_TESTS:-0}" == "1" ]]; then
  say "step tests: scripts/test.sh (RUN_TESTS=1)"
  [[ -x scripts/test.sh ]] || die "step tests: scripts/test.sh not found"
  scripts/test.sh >&2 || die "step tests: scripts/test.sh failed; nothing was pushed"
fi

say "step account: aws sts get-caller-identity"
account="$(aws sts get-caller-identity --query Account --output text --region "$region")" ||
  die "step account: 'aws sts get-caller-identity' failed; are AWS credentials configured?"
[[ "$account" =~ ^[0-9]{12}$ ]] ||
  die "step account: 'aws sts get-caller-identity' returned '$account', not a 12-digit account id"

domain="amazonaws.com"
if [[ "$region" == cn-* ]]; then
  domain="amazonaws.com.cn"
fi
registry="${account}.dkr.ecr.${region}.${domain}"
uri="${registry}/${repository}:${tag}"

say "step repository: aws ecr describe-repositories ($repository)"
if described="$(aws ecr describe-repositories --repository-names "$repository" --region "$region" 2>&1)"; then
  say "repository $repository exists"
elif [[ "$described" == *RepositoryNotFoundException* ]]; then
  say "step repository: creating $repository"
  aws ecr create-repository --repository-name "$repository" --region "$region" \
    --image-scanning-configuration scanOnPush=true >/dev/null ||
    die "step repository: 'aws ecr create-repository' failed for $repository in $region"
else
  printf '%s\n' "$described" >&2
  die "step repository: 'aws ecr describe-repositories' failed for $repository in $region"
fi

say "step login: docker login $registry"
aws ecr get-login-password --region "$region" |
  docker login --username AWS --password-stdin "$registry" >&2 ||
  die "step login: 'aws ecr get-login-password | docker login' failed for $registry"

build_args=()
if [[ -n "${FRAMEWORKS:-}" ]]; then
  build_args+=(--build-arg "FRAMEWORKS=${FRAMEWORKS}")
fi
say "step build: docker buildx build --platform $platform -t $uri --push"
# The ${a[@]+"${a[@]}"} form keeps an empty array safe under `set -u` in bash 3.2 (macOS).
docker buildx build --platform "$platform" ${build_args[@]+"${build_args[@]}"} -t "$uri" --push . >&2 ||
  die "step build: 'docker buildx build --platform $platform' failed; nothing was pushed"

say "pushed $uri"
printf '%s\n' "$uri"
