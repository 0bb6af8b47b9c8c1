# What `cmake --install` puts where: binaries, plugin, man pages, unit, example INI, product CSV,
# docs and bash completion. Components: "tools" (kms-analyze, kms-replay, service) and
# "wireshark-plugin" (kms.so), which cmake/KmscopePackaging.cmake turns into two Debian packages.
include(GNUInstallDirs)
set(KMSCOPE_FULL_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
