// Progress bar text: bar cells, percentage, elapsed time and ETA.
#include <gtest/gtest.h>

#include <cstdio>

#include "util/progress.h"

namespace kvq {
namespace {

TEST(Progress, Durations) {
  EXPECT_EQ(format_duration(0.04), "0.0s");
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(7380), "2h03m");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(Progress, LineWithEta) {
  // A quarter done after 10 s: 30 s to go at the same rate.
  EXPECT_EQ(format_progress(25, 100, 10, 8, "q8_0/q4_0 @ 512"),
            "[##......]  25.0%  10.0s elapsed, ETA 30.0s  q8_0/q4_0 @ 512");
  EXPECT_EQ(format_progress(0, 100, 1, 4, ""), "[....]   0.0%  1.0s elapsed");
  EXPECT_EQ(format_progress(150, 100, 5, 4, ""), "[####] 100.0%  5.0s elapsed");
}

TEST(Progress, DisabledBarWritesNothing) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  {
    ProgressBar bar(10, /*enabled=*/false, out);
    bar.update(5, "half");
    bar.finish();
  }
  EXPECT_EQ(std::ftell(out), 0L);
  {
    ProgressBar bar(10, /*enabled=*/true, out);
    bar.update(5, "half");
  }  // the destructor clears the line
  EXPECT_GT(std::ftell(out), 0L);
  std::fclose(out);
}

}  // namespace
}  // namespace kvq
