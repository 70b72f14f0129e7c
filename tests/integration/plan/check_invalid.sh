#!/bin/sh
# Runs `aurora plan` on an invalid scenario: exit code 2 and an error that names the field.
# usage: check_invalid.sh AURORA SCENARIO EXPECTED_SUBSTRING
set -u
aurora=$1; scenario=$2; expected=$3
err=$("$aurora" plan "$scenario" 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] || { echo "exit code $rc, want 2: $err"; exit 1; }
case "$err" in *"$expected"*) echo "$err";; *) echo "message '$err' lacks '$expected'"; exit 1;; esac
