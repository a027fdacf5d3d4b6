#!/usr/bin/env bash
# html-screenshots.sh: render the HTML reports of a few committed dump pairs in headless
# Chromium, in the light and the dark theme, to look at them (not part of CI).
#
#   scripts/html-screenshots.sh [OUT_DIR]        default: html-screenshots
#
# Environment:
#   CHROMIUM  the browser (default: chromium)
#   MIGDIFF   the migdiff binary (default: target/release/migdiff, built if missing)
#   HEIGHT    screenshot height in pixels (default: 2400)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out=$(mkdir -p "${1:-html-screenshots}" && cd "${1:-html-screenshots}" && pwd)
CHROMIUM=${CHROMIUM:-chromium}
MIGDIFF=${MIGDIFF:-$root/target/release/migdiff}
HEIGHT=${HEIGHT:-2400}

if [ ! -x "$MIGDIFF" ]; then
  (cd "$root" && cargo build --release --quiet)
fi

# name  old  new: a QEMU update, a running guest, a device on one side, a CPU more.
pairs=(
  "qemu-update pc72-qemu72.mig pc72-qemu10.mig"
  "running pc10-stopped.mig pc10-running.mig"
  "virtio-net pc10-stopped.mig pc10-virtio-net.mig"
  "smp2 pc10-stopped.mig pc10-smp2.mig"
)
for pair in "${pairs[@]}"; do
  read -r name old new <<<"$pair"
  # Exit status 1 means "differences", which every pair has.
  (cd "$root/testdata" && "$MIGDIFF" report --html -o "$out/$name.html" "$old" "$new") || [ $? -eq 1 ]
  for theme in light dark; do
    flags=()
    [ "$theme" = dark ] && flags=(--force-dark-mode --blink-settings=preferredColorScheme=0)
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars "${flags[@]}" \
      --window-size=1400,"$HEIGHT" --screenshot="$out/$name-$theme.png" \
      "file://$out/$name.html" 2>/dev/null
    echo "html-screenshots: $out/$name-$theme.png"
  done
done
