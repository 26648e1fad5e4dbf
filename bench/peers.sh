#!/usr/bin/env bash
# searchd against ONNX Runtime on the same weights and sentences, in one run, one thread:
# ms per sentence (batch 1, every sentence of the data set in order, median of RUNS passes),
# accuracy, and the ratios; searchd in F32 and with INT8 layers (--precision int8), dense and
# under each schedule. The peer is ../shared/bench (export to ONNX with Debian's
# python3-torch, dynamic INT8 with python3-onnx, onnxruntime-node from npm), set up once in a
# cache folder (npm with --ignore-scripts: the CPU build ships in the package; its install
# script only fetches GPU libraries from outside).
#
# usage: bench/peers.sh [MODEL_DIR] [DATA_TSV] [SCHEDULE...]
#   defaults: ../shared/models/sst2-bert-L6-H256, ../shared/data/sst2/test.tsv, no schedule
#   env: RUNS (passes per figure, default 5), THREADS (default 1), PEERS_CACHE (cache folder),
#        FRONTIER (the frontier file of schedules that narrow layers: tune --width --out FILE)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$root/../shared" && pwd)
model=$(cd "${1:-$shared/models/sst2-bert-L6-H256}" && pwd)
data=$(realpath "${2:-$shared/data/sst2/test.tsv}")
shift $(($# > 2 ? 2 : $#))
schedules=("$@")
runs=${RUNS:-5}
threads=${THREADS:-1}
cache=${PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/searchd-peers}
searchctl="$root/build/client/searchctl"

# --- set-up: packages, onnxruntime-node, the ONNX files (each once) ---
need=()
/usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch)
/usr/bin/python3 -c 'import onnx' 2>/dev/null || need+=(python3-onnx)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
[ -x "$searchctl" ] || (cd "$root" && bash scripts/deps.sh && { [ -f build/build.ninja ] || meson setup build >/dev/null; } && ninja -C build >/dev/null)
mkdir -p "$cache"
if [ ! -d "$cache/node_modules/onnxruntime-node" ]; then
  (cd "$cache" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --ignore-scripts onnxruntime-node >/dev/null)
fi
key="$(basename "$model")-$(basename "$data" .tsv)"
onnx="$cache/$key"
if [ ! -f "$onnx.int8.onnx" ] || [ "$model/model.safetensors" -nt "$onnx.onnx" ]; then
  /usr/bin/python3 "$shared/bench/export_onnx.py" "$model" "$data" "$onnx" >/dev/null 2>&1
  /usr/bin/python3 "$shared/bench/quantize_onnx.py" "$onnx.onnx" "$onnx.int8.onnx" >/dev/null 2>&1
fi
export NODE_PATH="$cache/node_modules"

# --- measurements, interleaved so drift on a shared machine hits every row alike ---
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
field() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# searchd's rows: name -> searchctl eval options
declare -A opts=(["searchd dense"]="" ["searchd int8"]="--precision int8")
names=("searchd dense" "searchd int8" "ORT fp32" "ORT INT8")
for s in "${schedules[@]}"; do
  names+=("searchd $s" "searchd $s int8")
  opts["searchd $s"]="--schedule $s${FRONTIER:+ --frontier $FRONTIER}"
  opts["searchd $s int8"]="--schedule $s --precision int8${FRONTIER:+ --frontier $FRONTIER}"
done
declare -A ms acc flops
for ((r = 0; r < runs; r++)); do
  for n in "${names[@]}"; do
    case $n in
    "ORT fp32") ms[$n]+="$(node "$shared/bench/ort_seq.js" "$onnx.onnx" "$onnx.seqs.json" "$threads" 1 | field latency_ms) " ;;
    "ORT INT8") ms[$n]+="$(node "$shared/bench/ort_seq.js" "$onnx.int8.onnx" "$onnx.seqs.json" "$threads" 1 | field latency_ms) " ;;
    *) ms[$n]+="$("$searchctl" eval --model "$model" --data "$data" --threads "$threads" ${opts[$n]} --json | field latency_ms) " ;;
    esac
  done
done
acc["ORT fp32"]=$(node "$shared/bench/ort_acc.js" "$onnx.onnx" "$onnx.seqs.json" "$data" | field accuracy)
acc["ORT INT8"]=$(node "$shared/bench/ort_acc.js" "$onnx.int8.onnx" "$onnx.seqs.json" "$data" | field accuracy)
for n in "${!opts[@]}"; do
  out=$("$searchctl" eval --model "$model" --data "$data" ${opts[$n]} --json)
  acc[$n]=$(field accuracy <<<"$out")
  [[ $n == "searchd dense" || $n == "searchd int8" ]] || flops[$n]=$(field flops_ratio <<<"$out")
done

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
isa=$(grep -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "CPU: $cpu (${isa% }); $threads thread(s); $(basename "$model") on $(basename "$data")" \
  "($(($(wc -l <"$data") - 1)) sentences); median of $runs passes, each row in every pass"
fp32=$(echo ${ms["ORT fp32"]} | tr ' ' '\n' | median)
int8=$(echo ${ms["ORT INT8"]} | tr ' ' '\n' | median)
dense=$(echo ${ms["searchd dense"]} | tr ' ' '\n' | median)
printf '%-44s %9s %9s %8s %8s %8s %7s\n' "" "ms/sent" "accuracy" "/ORT32" "/ORT8" "/dense" "FLOPs"
for n in "${names[@]}"; do
  t=$(echo ${ms[$n]} | tr ' ' '\n' | median)
  awk -v n="$n" -v t="$t" -v a="${acc[$n]}" -v f32="$fp32" -v i8="$int8" -v d="$dense" \
      -v fl="${flops[$n]:-}" 'BEGIN {
    printf "%-44s %9.3f %8.2f%% %8.2f %8.2f %8s %7s\n", n, t, 100 * a, t / f32, t / i8,
      (n ~ /^searchd/ ? sprintf("%.2f", t / d) : "-"), (fl == "" ? (n ~ /^searchd/ ? "1.00" : "-") : sprintf("%.2f", fl)) }'
done
