#!/bin/sh
# Writes seven stderr lines and exits 3.
echo "starting"
for i in 1 2 3 4 5 6 7; do echo "problem $i" >&2; done
exit 3
