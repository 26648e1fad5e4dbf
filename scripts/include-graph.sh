#!/usr/bin/env bash
# The project's include graph, from its `#include "..."` lines: between folders, and between
# the files of searchd/ (sd_x.c and sd_x.h are one node, sd_x). Fails (exit 1) when a folder
# includes one it must not (the layering below) or when searchd/ has an include cycle other
# than sd_conn <-> sd_methods. Every call between files needs the callee's header, so the
# include graph is also the graph of which file calls which.
#   usage: scripts/include-graph.sh [SOURCE_ROOT]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

find . \( -path ./.git -o -path './build*' -o -path ./subprojects \) -prune -o \
     -type f \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||' | sort |
  awk '
# The layering: engine <- schedules <- {proto <- client, proto <- searchd}. Each folder may
# include itself and these; folders not listed (tests, fuzz, bench, examples, python) sit on top
# and are shown, not checked. tools/ builds demo models on the engine; searchctl bench uses it.
BEGIN {
  allowed["engine"] = ""
  allowed["schedules"] = "engine"
  allowed["proto"] = ""
  allowed["tools"] = "engine"
  allowed["client"] = "engine schedules proto tools"
  allowed["searchd"] = "engine schedules proto"
  pair_a = "sd_conn"; pair_b = "sd_methods" # may include each other, as in Neovim
}
{ files[$0] = 1; list[++n] = $0 }
function top(p) { sub(/\/.*/, "", p); return p }
function node(p) { sub(/.*\//, "", p); sub(/\.[ch]$/, "", p); return p }
function sorted(s,    w, k, i, j, t, r) { # the words of s in order
  k = split(s, w, " ")
  for (i = 2; i <= k; i++) for (j = i; j > 1 && w[j - 1] > w[j]; j--) { t = w[j]; w[j] = w[j - 1]; w[j - 1] = t }
  for (i = 1; i <= k; i++) r = r " " w[i]
  return r
}
END {
  status = 0
  for (i = 1; i <= n; i++) {
    f = list[i]; dir = f; sub(/\/[^\/]*$/, "", dir)
    while ((getline line < f) > 0) {
      if (line !~ /^[ \t]*#[ \t]*include[ \t]*"/) continue
      inc = line; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
      # Resolved as the compiler does: next to the includer, then from the root (-I.).
      if ((dir "/" inc) in files) t = dir "/" inc
      else if (inc in files) t = inc
      else continue # not a file of the tree
      a = top(f); b = top(t)
      if (a != b) {
        fold[a " " b] = 1
        if ((a in allowed) && index(" " allowed[a] " ", " " b " ") == 0)
          bad[++nbad] = f " includes " t ": " a "/ may include only " \
                        (allowed[a] == "" ? "itself" : allowed[a] " and itself")
      }
      if (a == "searchd" && b == "searchd" && node(f) != node(t)) {
        x = node(f); y = node(t)
        if (!((x " " y) in sd)) { sd[x " " y] = 1; out[x] = out[x] " " y }
        nodes[x] = 1; nodes[y] = 1
      }
    }
    close(f)
  }
  print "folders (A -> B: a file of A includes a header of B):"
  for (k in fold) { split(k, p, " "); fo[p[1]] = fo[p[1]] " " p[2] }
  cmd = "sort"
  for (k in fo) printf "  %-10s ->%s\n", k, sorted(fo[k]) | cmd
  close(cmd)
  if (nbad) {
    print "layering violated (engine <- schedules <- {proto <- client, proto <- searchd}):"
    for (i = 1; i <= nbad; i++) print "  " bad[i]
    status = 1
  } else print "layering: ok"

  print "\nsearchd/ files (A -> B: sd_A.c or sd_A.h includes sd_B.h):"
  for (k in out) printf "  %-12s ->%s\n", k, sorted(out[k]) | cmd
  close(cmd)
  # Reachability (a few dozen nodes: the closure is cheap), then each strongly connected set:
  # only {sd_conn, sd_methods} may have more than one member.
  for (k in sd) reach[k] = 1
  for (m in nodes) for (x in nodes) if ((x " " m) in reach)
    for (y in nodes) if ((m " " y) in reach) reach[x " " y] = 1
  cycles = 0
  for (x in nodes) {
    members = x; count = 1
    for (y in nodes) if (y != x && ((x " " y) in reach) && ((y " " x) in reach)) {
      if (y < x) { count = 0; break } # reported from its smallest member
      members = members " " y; count++
    }
    if (count > 1 && members != pair_a " " pair_b) {
      print "searchd/ has an include cycle among: " members; cycles++
    }
  }
  if (cycles) status = 1
  else print "searchd/ cycles: none other than " pair_a " <-> " pair_b
  exit status
}'
