# Why the algorithms differ: the same attack (idle, then ten times the rate across a
# window edge) through each of them. Top: admitted per second in each bin. Bottom:
# admitted since the data began, which spans one period, so it is what one window of
# one period let through, against the limit.
# Inputs (gnuplot -e, from report.py): plots, this folder; dir, the results folder holding
# boundary.dat (one block per algorithm: bin start ms, per second, bin end ms, running
# total); algorithms, their names in block order; optional: limit (per period), limit_rate
# (per second), edge (ms).
height = 560
load plots.'/common.gp'
set output dir.'/boundary.svg'
set multiplot layout 2,1 title 'One attack across a window edge (dashed), through each algorithm'
set key outside right top
set lmargin 10
set rmargin 28
set xlabel ''
set format x ''
set ylabel 'admitted per second'
set yrange [0:*]
if (exists('edge')) { set arrow 1 from first edge, graph 0 to first edge, graph 1 nohead dt 2 lw 1 lc rgb '#666666' front }
if (exists('limit_rate')) {
  set arrow 2 from graph 0, first limit_rate to graph 1, first limit_rate nohead lw 2 dt 3 lc rgb '#000000' front
  set label 2 'limit rate' at graph 1, first limit_rate offset 1,0 textcolor rgb '#000000'
}
# Lines overlap where algorithms agree: each is drawn narrower than the one before.
w(i) = 2 * (words(algorithms) - i) + 1.5
plot for [i=1:words(algorithms)] dir.'/boundary.dat' index i-1 using 1:2 with steps lt i lw w(i) title word(algorithms,i)
unset label 2
unset arrow 2
set format x '%g'
set xlabel 'time (ms)'
set ylabel 'admitted so far'
if (exists('edge')) { set label 1 'window edge' at first edge, graph 1 right offset -0.5,-0.8 textcolor rgb '#666666' front }
if (exists('limit')) {
  set arrow 2 from graph 0, first limit to graph 1, first limit nohead lw 2 dt 3 lc rgb '#000000' front
  set label 2 'limit' at graph 1, first limit offset 1,0 textcolor rgb '#000000'
}
plot for [i=1:words(algorithms)] dir.'/boundary.dat' index i-1 using 3:4 with lines lt i lw w(i) notitle
unset multiplot
