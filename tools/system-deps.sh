#!/usr/bin/env bash
# Debian packages auditkit needs outside Python: Pango/HarfBuzz for WeasyPrint (PDF rendering),
# fonts (DejaVu for Latin, Noto CJK for Chinese), poppler-utils for checking PDFs (pdfsig,
# pdftotext, pdftoppm), qpdf (the tests' independent check of the PDF structure), postgresql
# (the registry tests start a throwaway server with initdb + pg_ctl from
# /usr/lib/postgresql/*/bin; tests/registry_fixtures.py), chromium and chromium-driver (the
# dashboard's browser tests drive Debian's browser; nothing downloads one). Installs what
# is missing when run as root with apt-get; otherwise says what to install and carries on (the
# Python parts still install).
set -u
packages=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig fonts-dejavu-core
          fonts-noto-cjk poppler-utils qpdf postgresql chromium chromium-driver)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  echo "system-deps: not a Debian system; make sure Pango, HarfBuzz-subset, fonts and poppler-utils are installed"
  exit 0
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "system-deps: apt-get failed; install by hand: ${missing[*]}"; exit 0; }
  # matplotlib caches the font list; a cache made before new fonts hides them
  rm -rf "${HOME:-/root}/.cache/matplotlib" 2>/dev/null
else
  echo "system-deps: missing ${missing[*]}; not root, so skipping. Install them with:"
  echo "  sudo apt-get install --no-install-recommends ${missing[*]}"
fi
exit 0
