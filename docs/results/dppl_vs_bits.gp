# kvq sweep chart: Perplexity change against bits per value (run `gnuplot dppl_vs_bits.gp` in this folder)
set encoding utf8
$ctx0 << EOD
16 0 "f16/f16"
12.25 -0.00719898 "f16/q8_0"
10.75 0.0414696 "f16/q5_0"
10.25 0.210343 "f16/q4_0"
12.25 0.401492 "q8_0/f16"
8.5 0.353486 "q8_0/q8_0"
7 0.378598 "q8_0/q5_0"
6.5 0.56038 "q8_0/q4_0"
10.75 31.4148 "q5_0/f16"
7 31.606 "q5_0/q8_0"
5.5 31.0993 "q5_0/q5_0"
5 31.2926 "q5_0/q4_0"
10.25 247.98 "q4_0/f16"
6.5 245.186 "q4_0/q8_0"
5 240.784 "q4_0/q5_0"
4.5 251.435 "q4_0/q4_0"
EOD
$ctx1 << EOD
16 0 "f16/f16"
12.25 -0.00360419 "f16/q8_0"
10.75 0.155586 "f16/q5_0"
10.25 0.197672 "f16/q4_0"
12.25 0.210082 "q8_0/f16"
8.5 0.225096 "q8_0/q8_0"
7 0.406365 "q8_0/q5_0"
6.5 0.457048 "q8_0/q4_0"
10.75 33.0769 "q5_0/f16"
7 32.7721 "q5_0/q8_0"
5.5 33.6438 "q5_0/q5_0"
5 33.4867 "q5_0/q4_0"
10.25 240.031 "q4_0/f16"
6.5 239.62 "q4_0/q8_0"
5 237.671 "q4_0/q5_0"
4.5 238.398 "q4_0/q4_0"
EOD
$ctx2 << EOD
16 0 "f16/f16"
12.25 -0.00544119 "f16/q8_0"
10.75 0.0847679 "f16/q5_0"
10.25 0.393926 "f16/q4_0"
12.25 0.353177 "q8_0/f16"
8.5 0.327531 "q8_0/q8_0"
7 0.514744 "q8_0/q5_0"
6.5 0.721419 "q8_0/q4_0"
10.75 30.9692 "q5_0/f16"
7 30.9267 "q5_0/q8_0"
5.5 31.5112 "q5_0/q5_0"
5 32.6018 "q5_0/q4_0"
10.25 207.018 "q4_0/f16"
6.5 205.688 "q4_0/q8_0"
5 207.257 "q4_0/q5_0"
4.5 206.83 "q4_0/q4_0"
EOD
set terminal pngcairo noenhanced size 1000,650 font 'Sans,10'
set output 'dppl_vs_bits.png'
set title 'Perplexity change against bits per value'
set grid
set key outside right top
set xlabel 'bits per value (mean of K and V)'
set ylabel 'ΔPPL (%)'
plot $ctx0 using 1:2 with points pt 4 ps 1.4 lw 2 lc rgb '#1b9e77' title 'context 128', \
     $ctx1 using 1:2 with points pt 6 ps 1.4 lw 2 lc rgb '#d95f02' title 'context 256', \
     $ctx2 using 1:2 with points pt 8 ps 1.4 lw 2 lc rgb '#7570b3' title 'context 512', \
     $ctx2 using 1:2:3 with labels offset 1,0.6 font ',8' notitle
set terminal svg noenhanced size 1000,650 dynamic font 'Sans,10' background rgb 'white'
set output 'dppl_vs_bits.svg'
replot
unset output
