#!/usr/bin/env bash
# Install the studio's offline data sources (idempotent). Online users can skip Fashion-MNIST:
# `load_fashion_mnist(download=True)` falls back to torchvision's download.
#   - Fashion-MNIST: Debian package dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist
#   - Twitter and Google emoji 64x64: npm packs -> ${STUDIO_DATA_DIR:-<repo>/data}/emoji/<style>/
#   - shapes3d: nothing to install; studio.data.shapes3d renders it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${STUDIO_DATA_DIR:-$repo/data}"
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

fm=/usr/share/datasets/fashion-mnist
if [ -f "$fm/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST: already installed in $fm"
else
  echo "Fashion-MNIST: installing Debian package dataset-fashion-mnist ..."
  $sudo_cmd apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || {
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
  echo "Fashion-MNIST: installed in $fm"
fi

for style in twitter google; do
  dest="$data/emoji/$style"
  if [ -f "$dest/emoji.json" ] && [ -d "$dest/img/$style/64" ]; then
    echo "Emoji ($style): already in $dest ($(ls "$dest/img/$style/64" | wc -l) images)"
    continue
  fi
  tmp="$(mktemp -d)"
  echo "Emoji ($style): fetching emoji-datasource-$style@16.0.0 from the npm registry ..."
  (cd "$tmp" && npm pack --silent "emoji-datasource-$style@16.0.0" >/dev/null)
  mkdir -p "$dest"
  tar xzf "$tmp"/emoji-datasource-"$style"-16.0.0.tgz -C "$dest" --strip-components=1 package/emoji.json "package/img/$style/64"
  rm -rf "$tmp"
  echo "Emoji ($style): $(ls "$dest/img/$style/64" | wc -l) images in $dest"
done
echo "shapes3d: nothing to install (rendered by studio.data.shapes3d; cached under $data/shapes3d)"
