#!/usr/bin/env bash
# verify-links.sh: every relative link in README.md and docs/**/*.md must
# resolve to a file or directory inside the repository, and a #anchor into
# a markdown file must name one of its headings (GitHub's anchor rules).
# Prints each broken link as file:line and exits 1 if there is any.
# Links inside code (fenced blocks, `inline`) are not links. Needs only
# bash, grep and awk, so it runs on a fresh machine before anything is built.
set -euo pipefail
export LC_ALL=C
case $0 in */*) cd "${0%/*}/.." ;; *) cd .. ;; esac
root=$(pwd)

# links FILE: "LINE<TAB>TARGET" for each inline link, image or reference
# definition outside code, in the order they appear.
links() {
  awk '
    /^ ? ? ?(```|~~~)/ { fence = !fence; next }
    fence { next }
    {
      line = $0
      gsub(/`[^`]*`/, "", line)        # inline code
      if (match(line, /^ ? ? ?\[[^]]+\]:[ \t]+[^ \t]+/)) {   # [ref]: target
        def = substr(line, RSTART, RLENGTH)
        sub(/^ ? ? ?\[[^]]+\]:[ \t]+/, "", def)
        print NR "\t" def
        next
      }
      while (match(line, /\]\([^)]*\)/)) {
        target = substr(line, RSTART + 2, RLENGTH - 3)
        line = substr(line, RSTART + RLENGTH)
        sub(/^[ \t]*</, "", target); sub(/>$/, "", target)
        sub(/[ \t].*$/, "", target)    # drop a "title"
        print NR "\t" target
      }
    }' "$1"
}

# anchors FILE: the anchors GitHub makes of FILE's headings, one a line.
anchors() {
  awk '
    /^ ? ? ?(```|~~~)/ { fence = !fence; next }
    fence { next }
    /^ ? ? ?#+([ \t]|$)/ {
      h = $0
      sub(/^ *#+[ \t]*/, "", h); sub(/[ \t]+#+[ \t]*$/, "", h)
      gsub(/\]\([^)]*\)/, "", h)       # [text](url) -> text
      h = tolower(h)
      gsub(/[^a-z0-9 _-]/, "", h)      # punctuation and non-ASCII go
      gsub(/ /, "-", h)
      slug = h
      if (seen[h]++) slug = h "-" (seen[h] - 1)
      print slug
    }' "$1"
}

# normalize PATH: PATH with . and .. resolved, relative to the repository
# root; fails when it leaves the repository.
normalize() {
  local -a parts=() out=()
  local p
  IFS=/ read -r -a parts <<<"$1"
  for p in "${parts[@]}"; do
    case $p in
      '' | .) ;;
      ..)
        ((${#out[@]})) || return 1
        unset 'out[${#out[@]}-1]'
        ;;
      *) out+=("$p") ;;
    esac
  done
  (IFS=/; printf '%s\n' "${out[*]}")
}

shopt -s globstar nullglob
files=(README.md docs/**/*.md)
broken=0
checked=0
report() { echo "$1:$2: $3" >&2; broken=$((broken + 1)); }

for f in "${files[@]}"; do
  dir=.
  [[ $f == */* ]] && dir=${f%/*}
  while IFS=$'\t' read -r line target; do
    case $target in
      '' | *://* | mailto:* | tel:*) continue ;;
    esac
    checked=$((checked + 1))
    path=${target%%#*}
    anchor=
    [[ $target == *'#'* ]] && anchor=${target#*#}
    path=${path%%\?*}
    path=${path//%20/ }
    if [[ -z $path ]]; then
      rel=$f # #anchor in the same file
    elif [[ $path == /* ]]; then
      report "$f" "$line" "$target: absolute path (link relative to the file instead)"
      continue
    elif ! rel=$(normalize "$dir/$path"); then
      report "$f" "$line" "$target: points outside the repository"
      continue
    fi
    if [[ ! -e $root/$rel ]]; then
      report "$f" "$line" "$target: no such file ($rel)"
      continue
    fi
    if [[ -n $anchor && $rel == *.md && -f $root/$rel ]]; then
      if ! anchors "$root/$rel" | grep -qxF -- "$anchor"; then
        report "$f" "$line" "$target: no heading #$anchor in $rel"
      fi
    fi
  done < <(links "$f")
done

if ((broken)); then
  echo "verify-links: $broken broken link(s) of $checked in ${#files[@]} files" >&2
  exit 1
fi
echo "verify-links: $checked relative links in ${#files[@]} files resolve"
