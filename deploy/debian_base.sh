#!/bin/sh
# A base image for the Dockerfile built from Debian's own packages, for machines that reach
# Debian's mirror and PyPI but no container registry (`docker build` cannot pull
# python:3.11-slim there). The image is Debian bookworm's minimal system with Python 3.11, pip
# and venv, `python` on the path, the build machine's extra CA certificates (a TLS-intercepting
# proxy's, so that pip reaches PyPI through it) and no "externally managed" marker (the image is
# the application's own environment, as python:3.11-slim is).
#
#   sudo deploy/debian_base.sh [TAG]          # default tag: losscast-base:bookworm
#   docker build --build-arg BASE_IMAGE=losscast-base:bookworm -t losscast .
#
# Needs root, debootstrap (apt-get install debootstrap) and a running Docker engine.
set -eu
tag="${1:-losscast-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror"
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python"]' - "$tag"
echo "built $tag"
