# Nanoseconds per decision, one group of bars per algorithm (and per peer), one bar per
# scenario; log scale, since a Redis round trip is a thousand times an in-memory decision.
# Inputs: dir/latency.dat, tab-separated, a header row of scenario names, "-" where
# missing; columns, how many columns it has.
load plots.'/common.gp'
set output dir.'/latency.svg'
set datafile separator "\t"
set datafile missing '-'
set ylabel 'ns per decision (log scale)'
set logscale y
set yrange [10:*]
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside top center horizontal
set xtics nomirror scale 0
set bmargin 4
plot for [i=2:columns] dir.'/latency.dat' using i:xtic(1) title columnheader(i) lt i-1
