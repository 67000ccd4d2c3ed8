#!/bin/sh
# The main job's tour: decisions for a few example calls. Usage: demo.sh [TOOLWARDEN]
set -u
tw=${1:-build/toolwarden}
dir=$(dirname "$0")
status=0
show() {
  expected=$1; shift
  echo "\$ toolwarden check $*"
  "$tw" check "$@"
  got=$?
  [ "$got" -eq "$expected" ] || { echo "demo: expected exit $expected, got $got" >&2; status=1; }
  echo
}
# Allowed: a trusted IBAN within the limit.
show 0 --policy "$dir/banking.policy" --tool send_money \
  --args '{"recipient": "UK12345678901234567890", "amount": 100, "subject": "rent", "date": "2024-01-01"}'
# Denied: the attacker's IBAN; the reason names the closest rule and its failing condition.
show 1 --policy "$dir/banking.policy" --tool send_money \
  --args '{"recipient": "US133000000121212121212", "amount": 100, "subject": "x", "date": "2024-01-01"}'
# Allowed only because the user typed the password in the query.
show 0 --policy "$dir/banking.policy" --tool update_password --args '{"password": "hunter2"}' \
  --query "Please change my password to hunter2"
show 1 --policy "$dir/banking.policy" --tool update_password --args '{"password": "attacker-pw"}' \
  --query "Please change my password to hunter2"
# Denied: an external recipient, by a forbid rule with its own message.
show 1 --policy "$dir/workspace.policy" --tool send_email \
  --args '{"recipients": ["mark@evil.example"], "subject": "s", "body": "b"}'
exit $status
