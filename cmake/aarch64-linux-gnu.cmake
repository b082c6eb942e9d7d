# Cross-compiling kvq for 64-bit ARM Linux with Debian's cross toolchain (g++-aarch64-linux-gnu) against the
# arm64 builds of its libraries (Debian multiarch: libhwy-dev:arm64 ...). Tests run under qemu-aarch64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Libraries and CMake configs from the arm64 multiarch tree; programs (pkg-config, ...) from the host.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# ctest and gtest_discover_tests start the test programs through the emulator (the run-time libraries are the
# arm64 multiarch packages, libc6:arm64 and libgomp1:arm64 among them); its CPU model comes from
# QEMU_CPU in the environment (qemu-user reads it), so one build runs under several emulated CPUs.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
