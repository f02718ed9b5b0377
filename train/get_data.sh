#!/usr/bin/env bash
# Install the studio's offline data sources (idempotent: a second run only checks and prints).
# Online users can skip Fashion-MNIST: `load_fashion_mnist(download=True)` falls back to torchvision.
#   - Fashion-MNIST: Debian package dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist
#   - Twitter and Google emoji 64x64: npm packs -> ${STUDIO_DATA_DIR:-<repo>/data}/emoji/<style>/
#   - shapes3d: nothing to install; studio.data.shapes3d renders it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${STUDIO_DATA_DIR:-$repo/data}"
emoji_version=16.0.0
fm=/usr/share/datasets/fashion-mnist
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

need() {  # fail early with a readable message rather than halfway through
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is needed to $2 but was not found." >&2; exit 1; }
}

install_fashion_mnist() {
  if [ -f "$fm/train-images-idx3-ubyte.gz" ]; then
    echo "Fashion-MNIST: already installed in $fm"
    return
  fi
  need apt-get "install the Debian package dataset-fashion-mnist (or use load_fashion_mnist(download=True) online)"
  echo "Fashion-MNIST: installing Debian package dataset-fashion-mnist ..."
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  [ -f "$fm/train-images-idx3-ubyte.gz" ] || { echo "error: dataset-fashion-mnist installed but $fm is empty." >&2; exit 1; }
  echo "Fashion-MNIST: installed in $fm"
}

install_emoji_style() {  # $1 = twitter | google
  local style="$1" dest="$data/emoji/$1"
  if [ -f "$dest/emoji.json" ] && [ -d "$dest/img/$style/64" ]; then
    echo "Emoji ($style): already in $dest ($(find "$dest/img/$style/64" -name '*.png' | wc -l) images)"
    return
  fi
  need npm "fetch the emoji packs"
  # Work next to the destination (same file system) and rename at the end:
  # an interrupted run never leaves a half-extracted style that the next run would skip.
  mkdir -p "$data/emoji"
  tmp="$(mktemp -d "$data/emoji/.get_data.XXXXXX")"
  echo "Emoji ($style): fetching emoji-datasource-$style@$emoji_version from the npm registry ..."
  (cd "$tmp" && npm pack --silent "emoji-datasource-$style@$emoji_version" >/dev/null)
  mkdir "$tmp/out"
  tar xzf "$tmp/emoji-datasource-$style-$emoji_version.tgz" -C "$tmp/out" --strip-components=1 \
    package/emoji.json "package/img/$style/64"
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"; tmp=""
  echo "Emoji ($style): $(find "$dest/img/$style/64" -name '*.png' | wc -l) images in $dest"
}

install_fashion_mnist
for style in twitter google; do install_emoji_style "$style"; done
echo "shapes3d: nothing to install (rendered by studio.data.shapes3d, cached under $data/shapes3d)"
