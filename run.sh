#!/usr/bin/env bash
# One entry point that sets everything up, then runs what you ask for.
#
#   ./run.sh demo [--out DIR]     set up, then run the main job (emqc demo) end to end
#   ./run.sh test [PYTEST ARGS]   set up (incl. Xvfb for napari, SLURM), then run the test suite
#   ./run.sh bench NAME [ARGS]    set up, then run benchmarks/NAME.py (see BENCHMARKS.md)
#   ./run.sh setup                only set up the virtual environment
#
# Setup is idempotent and fast when nothing changed: it creates .venv (Python 3.11),
# installs torch 2.13.0 (CPU) first, then everything else from the pinned
# requirements/lock.txt, and skips all of that when the lock and pyproject.toml
# are unchanged since the last install. Environment: EMQC_VENV (default .venv),
# EMQC_PYTHON (default python3.11, else python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV="${EMQC_VENV:-.venv}"
PIP_VERSION="26.3"
TORCH_VERSION="2.13.0"

say() { printf '\033[1m[emqc setup]\033[0m %s\n' "$*" >&2; }
die() { printf '[emqc setup] error: %s\n' "$*" >&2; exit 2; }

find_python() {
  local candidate
  for candidate in "${EMQC_PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  die "emqc needs Python 3.11 (found: $(python3 --version 2>&1 || echo none)). Install python3.11 or set EMQC_PYTHON to its path."
}

setup_venv() {
  local stamp_file="$VENV/.emqc-installed" stamp
  stamp="$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-64)"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  local py; py="$(find_python)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV with $py"
    "$py" -m venv "$VENV"
  fi
  say "installing pip $PIP_VERSION"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pip==$PIP_VERSION"
  # torch first and pinned: any request that lets pip choose torch pulls several GB of
  # CUDA wheels (see ../shared/STACK.md). The lock then pins everything else exactly.
  say "installing torch $TORCH_VERSION (CPU)"
  "$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt "torch==$TORCH_VERSION"
  say "installing emqc and its pinned dependencies (requirements/lock.txt)"
  "$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt -e ".[napari,kubernetes,test]"
  if "$VENV/bin/python" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
    die "CUDA packages (nvidia-*) got installed; something asked for a torch other than $TORCH_VERSION. Remove $VENV and check requirements/lock.txt."
  fi
  echo "$stamp" > "$stamp_file"
  say "environment ready: $VENV"
}

# Install the Debian packages among "$@" that are missing; $1 says what they are for.
install_debian_packages() {
  local why="$1"; shift
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v apt-get >/dev/null 2>&1 ||
    die "missing system packages for $why (${missing[*]}) and no apt-get to install them; install them with your package manager."
  say "installing system packages for $why: ${missing[*]}"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# System packages napari needs to run headless under Xvfb (../shared/STACK.md).
setup_display() {
  install_debian_packages "headless napari" xvfb xauth libgl1 libegl1 libgl1-mesa-dri \
    libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-xinerama0 \
    libxcb-randr0 libxcb-render-util0 libxcb-image0 libxcb-shape0 libdbus-1-3 libfontconfig1
}

# The one-node SLURM cluster that tests/test_batch_slurm.py starts on loopback.
setup_slurm() {
  install_debian_packages "the SLURM tests" slurmctld slurmd
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup_venv ;;
  demo)
    setup_venv
    exec "$VENV/bin/emqc" demo "$@" ;;
  test)
    setup_venv
    setup_display
    setup_slurm
    export QT_QPA_PLATFORM=xcb
    # A fresh temporary folder per run (kept when the run fails, for inspection): pytest's
    # default clean-up of earlier runs' folders under /tmp/pytest-of-USER turns into an error
    # under filterwarnings=error when one of them cannot be removed.
    basetemp="$(mktemp -d "${TMPDIR:-/tmp}/emqc-tests.XXXXXX")"
    status=0
    xvfb-run -a -s "-screen 0 1280x1024x24" "$VENV/bin/python" -m pytest --basetemp="$basetemp" "$@" || status=$?
    if [ "$status" -eq 0 ]; then rm -rf "$basetemp" 2>/dev/null || true
    else say "test files kept in $basetemp"; fi
    exit "$status" ;;
  bench)
    setup_venv
    name="${1:?usage: ./run.sh bench NAME [ARGS] (see BENCHMARKS.md)}"; shift
    [ -f "benchmarks/$name.py" ] || die "no benchmark named $name (have: $(ls benchmarks | sed -n 's/\.py$//p' | tr '\n' ' '))"
    if [ "$name" = judging_switch ] && [ -z "${DISPLAY:-}" ]; then  # napari needs a display
      setup_display
      export QT_QPA_PLATFORM=xcb
      exec xvfb-run -a -s "-screen 0 1280x1024x24" "$VENV/bin/python" "benchmarks/$name.py" "$@"
    fi
    exec "$VENV/bin/python" "benchmarks/$name.py" "$@" ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
