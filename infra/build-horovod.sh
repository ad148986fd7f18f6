#!/usr/bin/env bash
# Build Horovod 0.28.1 once per machine and install it into a Python environment.
#
#   infra/build-horovod.sh [PYTHON]        (or PYTHON=... infra/build-horovod.sh)
#
# Horovod ships only as a source package, and 0.28.1 does not build against torch 2.13 as it is:
#   - its bundled Gloo needs CMake < 4 ("Compatibility with CMake < 3.5 has been removed"), so
#     HOROVOD_CMAKE points at Debian's cmake 3.25, never the PyPI one;
#   - torch's headers need C++17 while Horovod's CMakeLists.txt pins C++14 and strips -std from
#     CXXFLAGS, so CXX is infra/cxx17, a wrapper that rewrites the flag (no source patches).
# The wheel is cached under $MLPATH_WHEEL_CACHE (default ~/.cache/mlpath/wheels), keyed by the
# Python tag, the torch version and CPU vs GPU operations, so a second venv on the same machine
# installs in seconds and a CPU build is never mistaken for a NCCL one. Nothing happens when
# `import horovod.torch` already works. The Makefile (`make horovod`), CI and infra/Dockerfile.gpu
# call this script; HOROVOD_GPU_OPERATIONS=NCCL selects the GPU build, MAX_JOBS the parallel
# compile jobs (default: one per core).
set -euo pipefail

HOROVOD_VERSION=0.28.1
PYTHON=${1:-${PYTHON:-python3}}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

if "$PYTHON" -c "import horovod.torch" 2>/dev/null; then
  echo "horovod: already importable by $PYTHON"
  exit 0
fi

if [ ! -x /usr/bin/cmake ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >/dev/null
  else
    echo "horovod: Debian's cmake is missing; as root: apt-get install cmake" >&2
    exit 1
  fi
fi

# The pins in constraints.txt (when the script runs from the repository) keep Horovod's own Python
# dependencies at the versions the rest of the environment was locked with.
constraints=()
[ -f "$root/constraints.txt" ] && constraints=(-c "$root/constraints.txt")

py_tag=$("$PYTHON" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
torch_version=$("$PYTHON" -c "import torch; print(torch.__version__)")
gpu_ops=${HOROVOD_GPU_OPERATIONS:-}
flavour=$([ -n "$gpu_ops" ] && echo "gpu-${gpu_ops,,}" || echo cpu)
cache=${MLPATH_WHEEL_CACHE:-$HOME/.cache/mlpath/wheels}/horovod-$HOROVOD_VERSION/$py_tag-torch-$torch_version-$flavour
mkdir -p "$cache"

find_wheel() { find "$cache" -maxdepth 1 -name "horovod-$HOROVOD_VERSION-*.whl" | head -n 1; }

# One build at a time per cache folder: a second caller waits and then reuses the wheel.
exec 9>"$cache/.lock"
flock 9
wheel=$(find_wheel)
if [ -z "$wheel" ]; then
  echo "horovod: building $HOROVOD_VERSION for $py_tag, torch $torch_version, $flavour (several minutes)"
  "$PYTHON" -m pip install --quiet "${constraints[@]}" setuptools cloudpickle psutil pyyaml packaging
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  started=$SECONDS
  env HOROVOD_CMAKE=/usr/bin/cmake \
      CXX="$here/cxx17" \
      MAKEFLAGS="-j${MAX_JOBS:-$(nproc)}" \
      HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
      HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
      "$PYTHON" -m pip wheel --quiet --no-build-isolation --use-pep517 --no-deps \
      "horovod==$HOROVOD_VERSION" -w "$build"
  mv "$build"/horovod-"$HOROVOD_VERSION"-*.whl "$cache"/
  echo "horovod: built in $((SECONDS - started)) s, cached in $cache"
  wheel=$(find_wheel)
fi
flock -u 9

"$PYTHON" -m pip install --quiet "${constraints[@]}" "$wheel"
"$PYTHON" -c "import horovod, horovod.torch; print('horovod', horovod.__version__, 'installed from', '$wheel')"
