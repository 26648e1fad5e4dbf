#!/usr/bin/env bash
# The main job on the embedded demo model: installs what is missing, builds, classifies a few
# sentences, evaluates the demo data set unpruned and under a pruning schedule, tunes a schedule
# ("fastest with under 1% drop") and checks it on the same data.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
ctl=build/client/searchctl
model=models/sst2-bert-L4-H128-demo
data=data/sst2-dev.tsv

echo "== classify (demo model, pruned with attn:1,0.7,0.5,0.3)"
$ctl classify --model $model --schedule attn:1,0.7,0.5,0.3 \
  "a gorgeous, witty, seductive movie." "the plot is nothing but boilerplate clichés from start to finish" \
  "it 's a charming and often affecting journey ."
echo
echo "== eval, unpruned"
$ctl eval --model $model --data $data
echo
echo "== eval, attn:1,0.7,0.5,0.3"
$ctl eval --model $model --data $data --schedule attn:1,0.7,0.5,0.3
echo
echo "== tune offline: the fastest schedule with under 1% drop (held-out part of the data),"
echo "   tokens, heads, FFN neurons and INT8 layers together"
$ctl tune --model $model --data $data --max-drop 0.01 --width --int8

echo
echo "== the daemon: start searchd, register the model, tune, ask for 'under 1% drop'"
tmp=$(mktemp -d)
sock=$tmp/searchd.sock
build/searchd/searchd --socket "$sock" --state-dir "$tmp/state" 2>"$tmp/searchd.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do $ctl ping --socket "$sock" >/dev/null 2>&1 && break; sleep 0.1; done
$ctl add --socket "$sock" --path $model --data $data --name demo
$ctl tune --daemon --socket "$sock" --model demo --max-drop 1% --width --int8
$ctl get --socket "$sock" --model demo --max-drop 1%
printf 'a gorgeous, witty, seductive movie.\nthe plot is a mess\n' |
  $ctl classify --daemon --socket "$sock" --model demo --max-drop 1%
kill -TERM $pid; wait $pid
trap 'rm -rf "$tmp"' EXIT
echo "searchd stopped cleanly"
