#!/usr/bin/env bash
# Checks that each crate under vendor/ differs from its published crates.io package by
# exactly the change vendor/NAME.patch records (vendor/README.md says why). The published
# package is fetched by cargo itself, through a throwaway manifest under target/.
# `scripts/check_vendor.sh --update` rewrites the .patch files after a deliberate change.
set -euo pipefail
cd "$(dirname "$0")/.."
problems=0
for dir in vendor/*/; do
  name=$(basename "$dir")
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$dir/Cargo.toml" | head -n 1)
  probe=target/vendor-check/$name
  mkdir -p "$probe/src"
  : > "$probe/src/lib.rs"
  printf '[package]\nname = "vendor-check"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n[dependencies]\n%s = "=%s"\n[workspace]\n' \
    "$name" "$version" > "$probe/Cargo.toml"
  cargo fetch --quiet --manifest-path "$probe/Cargo.toml"
  published=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$name-$version" | head -n 1)
  # Files cargo adds to a package are not part of it; the labels keep the patch portable.
  actual=$(diff -ru -x .cargo_vcs_info.json -x Cargo.toml.orig -x .cargo-ok -x Cargo.lock \
    "$published" "$dir" | sed -E "s#^(---|\+\+\+) ([^[:space:]]*).*#\1 \2#; s#$published#published#; s#${dir%/}#vendor/$name#" || true)
  if [ "${1:-}" = --update ]; then
    echo "$actual" > "vendor/$name.patch"
  elif [ "$actual" != "$(cat "vendor/$name.patch")" ]; then
    echo "vendor check: vendor/$name differs from $name $version otherwise than vendor/$name.patch records:"
    diff <(echo "$actual") "vendor/$name.patch" || true
    problems=$((problems + 1))
  fi
done
echo "vendor check: $problems problem(s)"
[ "$problems" = 0 ]
