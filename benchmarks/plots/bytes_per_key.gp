# Memory per key at 10^6 keys: heap bytes and resident-set growth per algorithm, against
# the target. Inputs: dir/bytes_per_key.dat (tab-separated: name, heap, RSS); target, bytes.
load plots.'/common.gp'
set output dir.'/bytes_per_key.svg'
set datafile separator "\t"
set datafile missing '-'
set title 'Bytes per key at 10⁶ keys'
set ylabel 'bytes per key'
set yrange [0:*]
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key inside top left
set xtics nomirror scale 0
set bmargin 4
if (exists('target')) {
  set arrow from graph 0, first target to graph 1, first target nohead lw 2 dt 3 lc rgb '#000000' front
  set label sprintf('target %g B', target) at graph 0.01, first target offset 0,0.7 textcolor rgb '#000000' front
}
plot dir.'/bytes_per_key.dat' using 2:xtic(1) title columnheader(2) lt 1, \
     '' using 3 title columnheader(3) lt 2
