#!/usr/bin/env bash
# Create a separate virtualenv for the LiteLLM proxy (the peer the gateway is compared with).
# It lives at bench/.venv-litellm (gitignored) so LiteLLM's many dependencies never touch the
# project venv. Re-running it is cheap: an existing venv with litellm is left as it is.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-litellm"
python="${PYTHON:-python3}"
if [[ -x "$venv/bin/litellm" ]] && [[ "${1:-}" != "--force" ]]; then
    echo "litellm already installed in $venv ($("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))'))"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# Pin with LITELLM_VERSION=1.x.y to compare against a fixed release.
spec="litellm[proxy]"
if [[ -n "${LITELLM_VERSION:-}" ]]; then spec="litellm[proxy]==${LITELLM_VERSION}"; fi
"$venv/bin/python" -m pip install --quiet "$spec"
echo "installed $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))') into $venv"
