# kvq sweep chart: KV cache size (run `gnuplot kv_mib_vs_context.gp` in this folder)
set encoding utf8
$pair0 << EOD
128 0.078125
256 0.15625
512 0.3125
EOD
$pair1 << EOD
128 0.0598145
256 0.119629
512 0.239258
EOD
$pair2 << EOD
128 0.0524902
256 0.10498
512 0.209961
EOD
$pair3 << EOD
128 0.0500488
256 0.100098
512 0.200195
EOD
$pair4 << EOD
128 0.0598145
256 0.119629
512 0.239258
EOD
$pair5 << EOD
128 0.0415039
256 0.0830078
512 0.166016
EOD
$pair6 << EOD
128 0.0341797
256 0.0683594
512 0.136719
EOD
$pair7 << EOD
128 0.0317383
256 0.0634766
512 0.126953
EOD
$pair8 << EOD
128 0.0524902
256 0.10498
512 0.209961
EOD
$pair9 << EOD
128 0.0341797
256 0.0683594
512 0.136719
EOD
$pair10 << EOD
128 0.0268555
256 0.0537109
512 0.107422
EOD
$pair11 << EOD
128 0.0244141
256 0.0488281
512 0.0976562
EOD
$pair12 << EOD
128 0.0500488
256 0.100098
512 0.200195
EOD
$pair13 << EOD
128 0.0317383
256 0.0634766
512 0.126953
EOD
$pair14 << EOD
128 0.0244141
256 0.0488281
512 0.0976562
EOD
$pair15 << EOD
128 0.0219727
256 0.0439453
512 0.0878906
EOD
set terminal pngcairo noenhanced size 1000,650 font 'Sans,10'
set output 'kv_mib_vs_context.png'
set title 'KV cache size'
set grid
set key outside right top
set logscale x 2
set xrange [106.66666666666667:614.4]
set xtics (128, 256, 512)
set xlabel 'context (tokens)'
set ylabel 'KV cache (MiB)'
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
set output 'kv_mib_vs_context.svg'
replot
unset output
