# kvq sweep chart: Perplexity change against the f16 cache (run `gnuplot dppl_vs_context.gp` in this folder)
set encoding utf8
$pair0 << EOD
128 0
256 0
512 0
EOD
$pair1 << EOD
128 -0.00719898
256 -0.00360419
512 -0.00544119
EOD
$pair2 << EOD
128 0.0414696
256 0.155586
512 0.0847679
EOD
$pair3 << EOD
128 0.210343
256 0.197672
512 0.393926
EOD
$pair4 << EOD
128 0.401492
256 0.210082
512 0.353177
EOD
$pair5 << EOD
128 0.353486
256 0.225096
512 0.327531
EOD
$pair6 << EOD
128 0.378598
256 0.406365
512 0.514744
EOD
$pair7 << EOD
128 0.56038
256 0.457048
512 0.721419
EOD
$pair8 << EOD
128 31.4148
256 33.0769
512 30.9692
EOD
$pair9 << EOD
128 31.606
256 32.7721
512 30.9267
EOD
$pair10 << EOD
128 31.0993
256 33.6438
512 31.5112
EOD
$pair11 << EOD
128 31.2926
256 33.4867
512 32.6018
EOD
$pair12 << EOD
128 247.98
256 240.031
512 207.018
EOD
$pair13 << EOD
128 245.186
256 239.62
512 205.688
EOD
$pair14 << EOD
128 240.784
256 237.671
512 207.257
EOD
$pair15 << EOD
128 251.435
256 238.398
512 206.83
EOD
set terminal pngcairo noenhanced size 1000,650 font 'Sans,10'
set output 'dppl_vs_context.png'
set title 'Perplexity change against the f16 cache'
set grid
set key outside right top
set logscale x 2
set xrange [106.66666666666667:614.4]
set xtics (128, 256, 512)
set xlabel 'context (tokens)'
set ylabel 'ΔPPL (%)'
plot $pair0 using 1:2 with linespoints lw 2 lc rgb '#1b9e77' dt 1 pt 7 ps 1.2 title 'K f16 / V f16', \
     $pair1 using 1:2 with linespoints lw 2 lc rgb '#1b9e77' dt 2 pt 5 ps 1.2 title 'K f16 / V q8_0', \
     $pair2 using 1:2 with linespoints lw 2 lc rgb '#1b9e77' dt 3 pt 9 ps 1.2 title 'K f16 / V q5_0', \
     $pair3 using 1:2 with linespoints lw 2 lc rgb '#1b9e77' dt 4 pt 11 ps 1.2 title 'K f16 / V q4_0', \
     $pair4 using 1:2 with linespoints lw 2 lc rgb '#d95f02' dt 1 pt 7 ps 1.2 title 'K q8_0 / V f16', \
     $pair5 using 1:2 with linespoints lw 2 lc rgb '#d95f02' dt 2 pt 5 ps 1.2 title 'K q8_0 / V q8_0', \
     $pair6 using 1:2 with linespoints lw 2 lc rgb '#d95f02' dt 3 pt 9 ps 1.2 title 'K q8_0 / V q5_0', \
     $pair7 using 1:2 with linespoints lw 2 lc rgb '#d95f02' dt 4 pt 11 ps 1.2 title 'K q8_0 / V q4_0', \
     $pair8 using 1:2 with linespoints lw 2 lc rgb '#7570b3' dt 1 pt 7 ps 1.2 title 'K q5_0 / V f16', \
     $pair9 using 1:2 with linespoints lw 2 lc rgb '#7570b3' dt 2 pt 5 ps 1.2 title 'K q5_0 / V q8_0', \
     $pair10 using 1:2 with linespoints lw 2 lc rgb '#7570b3' dt 3 pt 9 ps 1.2 title 'K q5_0 / V q5_0', \
     $pair11 using 1:2 with linespoints lw 2 lc rgb '#7570b3' dt 4 pt 11 ps 1.2 title 'K q5_0 / V q4_0', \
     $pair12 using 1:2 with linespoints lw 2 lc rgb '#e7298a' dt 1 pt 7 ps 1.2 title 'K q4_0 / V f16', \
     $pair13 using 1:2 with linespoints lw 2 lc rgb '#e7298a' dt 2 pt 5 ps 1.2 title 'K q4_0 / V q8_0', \
     $pair14 using 1:2 with linespoints lw 2 lc rgb '#e7298a' dt 3 pt 9 ps 1.2 title 'K q4_0 / V q5_0', \
     $pair15 using 1:2 with linespoints lw 2 lc rgb '#e7298a' dt 4 pt 11 ps 1.2 title 'K q4_0 / V q4_0'
set terminal svg noenhanced size 1000,650 dynamic font 'Sans,10' background rgb 'white'
set output 'dppl_vs_context.svg'
replot
unset output
