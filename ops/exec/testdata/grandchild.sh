#!/bin/sh
# Starts a grandchild that would outlive us, records its pid in $1, then
# hangs: a timeout must kill both.
sleep 30 &
echo $! > "$1"
sleep 30
