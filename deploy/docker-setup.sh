#!/usr/bin/env bash
# `make docker-setup`: what the Docker tests (tests/test_e2e_docker.py) and deploy/'s images need on
# a machine without a Docker engine, such as CI's, where no image can be pulled either:
#   - podman, with podman-docker's `docker`, podman-compose and runc (apt-get);
#   - its settings, in /etc/containers/containers.conf.d/50-tabular-pipeline.conf;
#   - a stand-in for the official python:<version>-slim base image (deploy/stand-in/), built from a
#     Debian bookworm root filesystem that mmdebstrap fetches from the Debian mirror.
# Once per machine; later runs check in a second, and rebuild the stand-in when what goes into it
# changes (the pins, the project's environment, the machine's CA bundle).
# On a machine whose `docker` reaches a Docker engine it does nothing.
#
#   deploy/docker-setup.sh PYTHON   PYTHON: the project's interpreter (its version names the base)
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR: where the root filesystem's packages come from.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:?usage: deploy/docker-setup.sh PYTHON}"
version="$("$python" -c 'import platform; print(platform.python_version())')"
base="docker.io/library/python:${version}-slim"
# The root filesystem's tag names what it is made of, so a change to that makes a new one.
rootfs_inputs=(deploy/stand-in/apt.conf deploy/stand-in/dpkg.cfg)
rootfs_packages=ca-certificates,netbase,tzdata,python3.11-venv
rootfs="localhost/tabular-pipeline/bookworm-python:3.11-$(cat "${rootfs_inputs[@]}" <(echo "$rootfs_packages") | sha256sum | cut -c1-12)"
label=io.github.tabular-pipeline.stand-in
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
conf=/etc/containers/containers.conf.d/50-tabular-pipeline.conf
started=$SECONDS

say() { echo "docker-setup: $*"; }

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && ! docker --version 2>&1 | grep -qi podman; then
  say "a Docker engine answers 'docker version'; nothing to set up"
  exit 0
fi
case "$version" in
  3.11.*) ;;
  *) say "the project's Python is $version; the stand-in base holds Debian bookworm's Python 3.11" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  say "needs root (apt-get, /etc/containers, podman's image store); run it as root" >&2
  exit 2
fi
# Two `make test` runs starting at once on one machine take turns here.
exec 9> /var/lock/tabular-pipeline-docker-setup.lock
flock 9

# netavark and iptables: bridge networks (`-p` mappings, podman-compose); slirp4netns: a container
# reaching a server on the host's loopback; aardvark-dns: service names in compose networks.
packages=(podman podman-docker podman-compose runc netavark aardvark-dns slirp4netns iptables mmdebstrap)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  step=$SECONDS
  log=/var/tmp/tabular-pipeline-docker-setup-apt.log
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"; } > "$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "apt-get could not install ${missing[*]}; the whole log is $log" >&2
    exit 1
  fi
  say "installed ${missing[*]} ($((SECONDS - step)) s)"
fi

# runc: crun fails on this kind of machine (cgroups in hybrid mode). Lower ulimits: podman's
# defaults are refused (setrlimit RLIMIT_NOFILE: Operation not permitted). Networking stays
# podman's default bridge, so `-p <port>:8080` maps as it does with Docker; netavark by name, or
# podman warns on every call about the CNI file its Debian package ships without CNI's plugins.
settings='# Written by deploy/docker-setup.sh (tabular-pipeline).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"'
if [ "$(cat "$conf" 2>/dev/null)" != "$settings" ]; then
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$settings" > "$conf.tmp"
  mv "$conf.tmp" "$conf"
  say "wrote $conf"
fi
# podman-docker's `docker` prints a notice on every call unless this file exists.
[ -e /etc/containers/nodocker ] || touch /etc/containers/nodocker

if ! podman image exists "$rootfs"; then
  step=$SECONDS
  tarball="$(mktemp /var/tmp/tabular-pipeline-rootfs.XXXXXX)"
  trap 'rm -f "$tarball"' EXIT
  mmdebstrap --quiet --variant=minbase --format=tar --include="$rootfs_packages" \
    --aptopt=deploy/stand-in/apt.conf --dpkgopt=deploy/stand-in/dpkg.cfg bookworm "$tarball" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main" || { say "mmdebstrap could not build the root filesystem" >&2; exit 1; }
  podman import --quiet "$tarball" "$rootfs" >/dev/null
  rm -f "$tarball"
  say "imported a Debian bookworm root filesystem as $rootfs ($((SECONDS - step)) s)"
fi

# The stand-in is rebuilt when what goes into it changes: the pins, the environment, the CA bundle.
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/deploy/stand-in" "$context/deploy/tracking"
cp requirements.txt "$context/"
cp deploy/tracking/requirements.txt "$context/deploy/tracking/"
cp deploy/stand-in/packages.txt "$context/deploy/stand-in/"
"$python" -m pip freeze --all --exclude-editable --disable-pip-version-check | grep -v ' @ ' > "$context/environment.txt"
cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$context/host-ca.pem"
inputs="$(cat deploy/stand-in/Dockerfile "$context"/{requirements.txt,environment.txt,host-ca.pem} \
  "$context"/deploy/{stand-in/packages.txt,tracking/requirements.txt} <(echo "$rootfs") | sha256sum | cut -c1-16)"
if podman image exists "$base"; then
  built="$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$base")"
  if [ -z "$built" ]; then
    say "$base is a real image (no stand-in label); it is used as it is"
    exit 0
  fi
  if [ "$built" = "$inputs" ]; then
    say "podman and the stand-in $base are ready"
    exit 0
  fi
fi
step=$SECONDS
previous="$(podman image inspect --format '{{.Id}}' "$base" 2>/dev/null || true)"
log=/var/tmp/tabular-pipeline-stand-in.log
if ! podman build --file deploy/stand-in/Dockerfile --build-arg ROOTFS="$rootfs" --build-arg INPUTS="$inputs" \
  --tag "$base" "$context" > "$log" 2>&1; then
  tail -n 20 "$log" >&2
  say "building the stand-in $base failed; the whole log is $log" >&2
  exit 1
fi
# What the previous build left (an image still in use stays).
if [ -n "$previous" ]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
for old in $(podman images --format '{{.Repository}}:{{.Tag}}' "${rootfs%:*}"); do
  [ "$old" = "$rootfs" ] || podman rmi "$old" >/dev/null 2>&1 || true
done
say "built the stand-in $base ($((SECONDS - step)) s; $((SECONDS - started)) s in all)"
