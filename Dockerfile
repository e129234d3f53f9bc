# syntax=docker/dockerfile:1
#
# agentdispatch-worker for Amazon Bedrock AgentCore Runtime: the worker binary as PID 1 and the
# Python framework runners with their virtualenvs, in one image.
#
#   docker buildx build --platform linux/arm64 -t agentdispatch-worker .       # AgentCore
#   docker buildx build --platform linux/amd64 --load -t agentdispatch-worker .
#   docker buildx build --build-arg FRAMEWORKS="langgraph" ...                  # fewer frameworks
#
# The Rust stage runs on the build machine and cross-compiles for TARGETARCH, so it runs at native
# speed on an x86 host. The runtime stage is the target platform: its virtualenvs are created there,
# for the target architecture (under QEMU binfmt emulation when the host differs).
# docs/packaging.md has the measured sizes and the reasons for the default FRAMEWORKS.

# Builder and runtime must share a Debian release: the binary links the builder's glibc.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
# CPython 3.12: a warm parent makes its objects immortal there (README "Warm starts"); the
# framework requirements are compiled for 3.11 and install unchanged on 3.12.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS builder
ARG TARGETARCH
ARG BUILDARCH

# Rust target triple, and a cross linker when the target is not the build machine's architecture.
# Debian stable's cross gcc is not version-pinned: its security updates replace old versions.
# hadolint ignore=DL3008
RUN set -eux; \
    case "$TARGETARCH" in \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu ;; \
      amd64) triple=x86_64-unknown-linux-gnu; gnu=x86-64-linux-gnu ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH' (use linux/arm64 or linux/amd64)" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$gnu" "libc6-dev-$TARGETARCH-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"; \
    echo "$triple" > /rust-target

# Debian's gcc names: native builds have these too, so they are safe to set for both targets.
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc

WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=agentdispatch-target-${TARGETARCH},sharing=locked \
    set -eux; \
    triple="$(cat /rust-target)"; \
    cargo build --release --locked --target "$triple" --bin agentdispatch-worker; \
    install -D -m 0755 "target/$triple/release/agentdispatch-worker" /out/agentdispatch-worker

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# The shipped Python frameworks whose virtualenvs the image carries (space-separated). The default
# keeps the image well under AgentCore's 1 GB limit; crewai alone is ~1 GB.
ARG FRAMEWORKS="langchain langgraph openai-agents pydantic-ai strands"
# Folders of frameworks/ to leave out of the image (space-separated). Every other folder of your
# own (one `agentdispatch-worker init` wrote, or any with a requirements.txt) is kept and installed.
ARG LEAVE_OUT=""
# The uv release scripts/setup-frameworks.sh is written for; used at build time only.
ARG UV_VERSION=0.13.9

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN groupadd --gid 1000 agentdispatch \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/agentdispatch \
       --shell /usr/sbin/nologin agentdispatch

WORKDIR /opt/agentdispatch
COPY frameworks/ frameworks/
COPY scripts/setup-frameworks.sh scripts/setup-frameworks.sh

# One layer: uv and its cache live in /tmp only during this step, so the image keeps the venvs
# alone, and files shared by several venvs stay hardlinks to one copy (uv links from its cache).
# A shipped Python framework not named in FRAMEWORKS keeps only its code, for the folders of
# your own that run its runner: its manifest and requirements go, so it gets no venv and the
# worker does not list it. Every other folder with a requirements.txt is your own: kept and
# installed. A folder named in LEAVE_OUT is removed.
RUN set -eux; \
    shipped="crewai langchain langgraph openai-agents pydantic-ai strands"; \
    for name in $LEAVE_OUT; do \
      case "$name" in */*|.*|_shared) echo "LEAVE_OUT: '$name' is not a framework folder's name" >&2; exit 1 ;; esac; \
      rm -rf "frameworks/$name"; \
    done; \
    set -- $FRAMEWORKS; \
    for req in frameworks/*/requirements.txt; do \
      [ -f "$req" ] || continue; \
      name="$(basename "$(dirname "$req")")"; \
      case " $FRAMEWORKS " in *" $name "*) continue ;; esac; \
      case " $shipped " in \
        *" $name "*) rm -f "frameworks/$name/framework.json" "frameworks/$name/requirements.in" "$req" ;; \
        *) set -- "$@" "$name" ;; \
      esac; \
    done; \
    if [ "$#" -gt 0 ]; then \
      python -m venv /tmp/uv-tool; \
      /tmp/uv-tool/bin/pip install --quiet "uv==${UV_VERSION}"; \
      UV=/tmp/uv-tool/bin/uv UV_CACHE_DIR=/tmp/uv-cache PYTHON=/usr/local/bin/python3 \
        scripts/setup-frameworks.sh "$@"; \
    fi; \
    rm -rf /tmp/uv-tool /tmp/uv-cache /root/.cache scripts

COPY --from=builder /out/agentdispatch-worker /usr/local/bin/agentdispatch-worker

# The environment the worker reads (SPEC §1); the artifact dir is writable by uid 1000.
# PORT is left unset: the worker listens on 8080, or on 9000 with AGENTDISPATCH_WORKER_PROTOCOL=a2a.
ENV AGENTDISPATCH_FRAMEWORKS_DIR=/opt/agentdispatch/frameworks \
    AGENTDISPATCH_ARTIFACT_DIR=/var/lib/agentdispatch/artifacts \
    HOME=/home/agentdispatch
RUN install -d -o 1000 -g 1000 -m 0750 /var/lib/agentdispatch "$AGENTDISPATCH_ARTIFACT_DIR"

USER 1000:1000
# Fails the build when the binary does not run on the target; lists the frameworks shipped.
RUN ["/usr/local/bin/agentdispatch-worker", "frameworks"]

# 8080: AgentCore's HTTP protocol (/invocations, /ping); 9000: its A2A protocol; 8000: its MCP protocol (/mcp).
EXPOSE 8080 9000 8000
# The worker is PID 1: it handles SIGTERM and reaps orphans itself, so no init is needed.
ENTRYPOINT ["/usr/local/bin/agentdispatch-worker"]
CMD ["serve"]
