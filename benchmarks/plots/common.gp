# Shared by the plots: an SVG that reads on GitHub's light background (explicit white
# fill, dark text), and one colour per series, the same order in every picture. A script
# may set `height` (pixels) before loading this. Names hold underscores, which enhanced
# text would turn into subscripts: noenhanced.
if (!exists('height')) height = 400
set terminal svg size 800,height dynamic noenhanced font 'Helvetica,12' background rgb 'white'
set border lc rgb '#333333'
set key textcolor rgb '#333333'
set grid ytics lc rgb '#dddddd' lt 1
array colours[8] = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f']
do for [i=1:8] { set linetype i lc rgb colours[i] lw 2 }
