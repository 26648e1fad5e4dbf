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
