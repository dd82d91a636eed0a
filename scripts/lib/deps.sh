# Installs the Debian packages rekey needs, if any is missing. Sourced.
# Re-running is quick: dpkg-query answers without touching the network.
REKEY_PACKAGES=(build-essential cmake pkg-config libpqxx-dev libssl-dev libcli11-dev libfmt-dev libtbb-dev
  doctest-dev nlohmann-json3-dev libtomlplusplus-dev postgresql python3-cryptography python3-psycopg2
  python3-cryptography-vectors time)

rekey_install_deps() { rekey_install_packages "${REKEY_PACKAGES[@]}" "$@"; }

# Installs those of the named Debian packages that are missing.
rekey_install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "rekey: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

rekey_build() {
  local build_dir="$1"; shift
  cmake -S "$REKEY_ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "$build_dir" -j"$(nproc)"
}
