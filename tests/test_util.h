// Helpers shared by the tests: where ../shared lives, reading fixture files.
#pragma once

#include <string>
#include <vector>

namespace kvq::test {

// Absolute path of a file under ../shared (the repository's sibling folder).
std::string shared_path(const std::string& relative);
std::string read_text_file(const std::string& path);
std::vector<int> read_ids_file(const std::string& path);  // one integer per line
// A fresh temporary directory for this test process.
std::string temp_dir();

}  // namespace kvq::test
