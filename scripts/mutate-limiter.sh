#!/usr/bin/env bash
# Mutation check of the adaptive limiter's law, run on demand: applies each
# mutation below to adaptive.go, one at a time, runs the root package's tests,
# and prints killed (a test failed, naming the first) or SURVIVED. The file is
# restored at the end. Every mutant listed is killed today.
cd "$(dirname "$0")/.."
orig=$(mktemp)
cp adaptive.go "$orig"
trap 'cp "$orig" adaptive.go' EXIT
i=0
while IFS='|' read -r name from to; do
	i=$((i+1))
	cp "$orig" adaptive.go
	if ! grep -qF -- "$from" adaptive.go; then echo "$name: PATTERN NOT FOUND"; continue; fi
	python3 - "$from" "$to" <<'PY'
import sys
p='adaptive.go'; s=open(p).read(); s=s.replace(sys.argv[1], sys.argv[2], 1); open(p,'w').write(s)
PY
	if go test -count=1 . >"$orig.out" 2>&1; then echo "SURVIVED  $name"; else echo "killed    $name ($(grep -m1 -o 'Test[A-Za-z_0-9]*' "$orig.out"))"; fi
done <<'LIST'
Headroom ×2|def(&c.Headroom, 0.03)|def(&c.Headroom, 0.06)
Fairness ×2|def(&c.Fairness, 0.15)|def(&c.Fairness, 0.3)
fairness floor 25→100|fairFloor = 25|fairFloor = 100
Beta 0.5→0.7|def(&c.Beta, 0.5)|def(&c.Beta, 0.7)
cut uses smoothed only|(1 - min(l.frac, f))|(1 - l.frac)
probe never doubles|g := l.c.Probe * math.Pow(2, float64(l.quiet-1))|g := l.c.Probe
slow start ×1.5|l.setRate(r * maxGrowth) // slow start|l.setRate(r * 1.5) // slow start
never goes calm|			l.limiting.Store(false)|			_ = 0
cancel is a no-op|			l.served++|			_ = 0
low-rate boost off|lowRateAnswers = 10|lowRateAnswers = 0
first measure keeps storm fraction|l.measured, l.frac = true, l.c.Headroom/(1+l.c.Headroom)|l.measured, l.frac = true, f
smoothing over 5 answers|smoothAnswers = 50|smoothAnswers = 5
no cap on blind slow start|l.setRate(min(r*maxGrowth, max(r, l.refused)))|l.setRate(r * maxGrowth)
deadline: linear best case|math.Log2(1+ahead/per)|(ahead/per)
calm path counts nothing|	n := l.answered.Add(1)|	n := l.answered.Load()
growth capped at ×2 per period removed|l.setRate(r*(1+min(g, maxGrowth-1)) + l.fair(r, p))|l.setRate(r*(1+g) + l.fair(r, p))
throttled period may raise without bound|l.setRate(max(r*keep+l.fair(r*keep, p), l.c.Beta*r))|l.setRate(max(r*keep*1.1+l.fair(r*keep, p), l.c.Beta*r))
all-throttled period starts at floor|l.setRate(l.c.Beta * max(r, float64(n)/p.Seconds()))|l.setRate(l.c.Beta * r)
LIST
cp "$orig" adaptive.go
