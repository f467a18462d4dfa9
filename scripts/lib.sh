# Shared by scripts/serve.sh and scripts/test.sh: a project virtualenv with pinned dependencies.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "Entryway needs Python 3.11 or newer (apt-get install python3.11 python3.11-venv)." >&2
  return 1
}

# ensure_venv [extra]: create .venv if needed and install the project (with the named extra) from the
# pinned constraints; reinstall only when pyproject.toml or constraints.txt changed.
ensure_venv() {
  local extra="${1:-}"
  local python
  python="$(find_python)"
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing python3-venv..." >&2
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
      else
        echo "Cannot create a virtualenv: install python3-venv (Debian) and try again." >&2
        return 1
      fi
    fi
  fi
  local spec="$ROOT"
  [ -n "$extra" ] && spec="$ROOT[$extra]"
  local stamp="$VENV/.entryway-installed-${extra:-base}"
  local want
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing Entryway${extra:+ with [$extra]} into .venv..." >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
    # Playwright's wheel carries its driver; the browser is Debian's chromium (ensure_chromium), never a
    # download of Playwright's own.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
      "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$spec" >&2
    echo "$want" >"$stamp"
  fi
}

# ensure_chromium: Debian's chromium for the browser tests (driven by Playwright through executable_path).
# Installs it with apt-get when missing (as root); exports ENTRYWAY_CHROMIUM for the tests. A Chromium of
# your own: set ENTRYWAY_CHROMIUM to its path.
ensure_chromium() {
  if [ -n "${ENTRYWAY_CHROMIUM:-}" ]; then
    if [ ! -x "$ENTRYWAY_CHROMIUM" ]; then
      echo "ENTRYWAY_CHROMIUM=$ENTRYWAY_CHROMIUM is not an executable Chromium." >&2
      return 1
    fi
  elif [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "Installing Debian's chromium for the browser tests..." >&2
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
    else
      echo "The browser tests need Chromium: run 'apt-get install chromium' as root (Debian), or set" >&2
      echo "ENTRYWAY_CHROMIUM to the path of a Chromium, and try again." >&2
      return 1
    fi
  fi
  export ENTRYWAY_CHROMIUM="${ENTRYWAY_CHROMIUM:-/usr/bin/chromium}"
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
}
