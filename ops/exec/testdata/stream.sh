#!/bin/sh
# Prints "ready" and waits for the file $1 to appear before finishing: it
# only finishes if its output is read while it runs.
echo ready
i=0
while [ ! -f "$1" ]; do
	i=$((i+1))
	if [ "$i" -gt 500 ]; then echo "never saw $1" >&2; exit 1; fi
	sleep 0.01
done
echo "warning" >&2
echo done
