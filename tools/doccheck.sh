#!/usr/bin/env bash
# Copyright 2026 The hwbp Authors.
# SPDX-License-Identifier: Apache-2.0
# doccheck.sh: the front door stays a front door. Run by make vet.
#   - README.md has at most 200 lines;
#   - every relative link of README.md, docs/ and patches/gvisor/README.md
#     names a file of the repository, and its #anchor, if any, a heading of
#     that file (GitHub's anchors: lower case, punctuation dropped, spaces
#     as dashes);
#   - no text of the repository sends the reader to ../shared, which only
#     the project's developers have.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
lines=$(wc -l <README.md)
if [ "$lines" -gt 200 ]; then
	echo "README.md has $lines lines; at most 200 (the rest belongs in docs/)"
	fail=1
fi

anchors() { # the anchors of the headings of markdown file $1
	grep -E '^#{1,6} ' "$1" | sed -E 's/^#+ +//' | tr 'A-Z' 'a-z' |
		sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}

for doc in README.md docs/*.md patches/gvisor/README.md; do
	dir=$(dirname "$doc")
	while IFS= read -r link; do
		target=${link%%#*}
		anchor=
		[ "$target" != "$link" ] && anchor=${link#*#}
		case "$target" in http://* | https://* | mailto:*) continue ;; esac
		file=$doc
		if [ -n "$target" ]; then
			file=$dir/$target
			if [ ! -e "$file" ]; then
				echo "$doc: link to $link: no file $file"
				fail=1
				continue
			fi
		fi
		if [ -n "$anchor" ] && ! anchors "$file" | grep -qx -- "$anchor"; then
			echo "$doc: link to $link: no heading #$anchor in $file"
			fail=1
		fi
	done < <(grep -oE '\]\([^) ]+\)' "$doc" | sed -E 's/^\]\((.*)\)$/\1/')
done

if out=$(git grep -n -e '\.\./shared' -- ':!tools/doccheck.sh' 2>/dev/null) && [ -n "$out" ]; then
	echo "text that refers to ../shared, which users of the repository do not have:"
	echo "$out"
	fail=1
fi
exit $fail
