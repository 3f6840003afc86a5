#!/bin/sh
# A deploy that records what it was given: its arguments, one per line, in
# $1.args and the version in $1.
out="$1"
shift
printf '%s\n' "$@" > "$out.args"
printf '%s\n' "$DAYTWO_VERSION" > "$out"
