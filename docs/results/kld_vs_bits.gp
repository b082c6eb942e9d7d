# kvq sweep chart: KL-divergence from the f16 cache (run `gnuplot kld_vs_bits.gp` in this folder)
set encoding utf8
$ctx0 << EOD
12.25 1.32207e-05 "f16/q8_0"
10.75 0.000694272 "f16/q5_0"
10.25 0.00292775 "f16/q4_0"
12.25 0.00254565 "q8_0/f16"
8.5 0.00255413 "q8_0/q8_0"
7 0.00309776 "q8_0/q5_0"
6.5 0.00546486 "q8_0/q4_0"
10.75 0.284108 "q5_0/f16"
7 0.284485 "q5_0/q8_0"
5.5 0.281401 "q5_0/q5_0"
5 0.283539 "q5_0/q4_0"
10.25 1.23959 "q4_0/f16"
6.5 1.23332 "q4_0/q8_0"
5 1.23079 "q4_0/q5_0"
4.5 1.25378 "q4_0/q4_0"
EOD
$ctx1 << EOD
12.25 1.30376e-05 "f16/q8_0"
10.75 0.000673808 "f16/q5_0"
10.25 0.00289764 "f16/q4_0"
12.25 0.00245315 "q8_0/f16"
8.5 0.00247461 "q8_0/q8_0"
7 0.00317317 "q8_0/q5_0"
6.5 0.00539981 "q8_0/q4_0"
10.75 0.282507 "q5_0/f16"
7 0.281914 "q5_0/q8_0"
5.5 0.285388 "q5_0/q5_0"
5 0.286294 "q5_0/q4_0"
10.25 1.21858 "q4_0/f16"
6.5 1.2158 "q4_0/q8_0"
5 1.21153 "q4_0/q5_0"
4.5 1.21724 "q4_0/q4_0"
EOD
$ctx2 << EOD
12.25 1.59225e-05 "f16/q8_0"
10.75 0.000688659 "f16/q5_0"
10.25 0.00288765 "f16/q4_0"
12.25 0.00242819 "q8_0/f16"
8.5 0.00247848 "q8_0/q8_0"
7 0.00306249 "q8_0/q5_0"
6.5 0.00530439 "q8_0/q4_0"
10.75 0.264625 "q5_0/f16"
7 0.2635 "q5_0/q8_0"
5.5 0.268087 "q5_0/q5_0"
5 0.273249 "q5_0/q4_0"
10.25 1.12085 "q4_0/f16"
6.5 1.11763 "q4_0/q8_0"
5 1.12401 "q4_0/q5_0"
4.5 1.12543 "q4_0/q4_0"
EOD
set terminal pngcairo noenhanced size 1000,650 font 'Sans,10'
set output 'kld_vs_bits.png'
set title 'KL-divergence from the f16 cache'
set grid
set key outside right top
set xlabel 'bits per value (mean of K and V)'
set ylabel 'mean KLD (nats)'
set logscale y 10
set format y '%.0e'
plot $ctx0 using 1:2 with points pt 4 ps 1.4 lw 2 lc rgb '#1b9e77' title 'context 128', \
     $ctx1 using 1:2 with points pt 6 ps 1.4 lw 2 lc rgb '#d95f02' title 'context 256', \
     $ctx2 using 1:2 with points pt 8 ps 1.4 lw 2 lc rgb '#7570b3' title 'context 512', \
     $ctx2 using 1:2:3 with labels offset 1,0.6 font ',8' notitle
set terminal svg noenhanced size 1000,650 dynamic font 'Sans,10' background rgb 'white'
set output 'kld_vs_bits.svg'
replot
unset output
