# What `cmake --install` puts where: binaries, plugin, man pages, unit, example INI, product CSV,
# docs and bash completion. Components: "tools" (kms-analyze, kms-replay, service) and
# "wireshark-plugin" (kms.so), which cmake/KmscopePackaging.cmake turns into two Debian packages.
# The binaries' and the plugin's install() rules are in analyzer/, replay/ and dissector/.

# share/doc/kmscope whatever the project's name becomes: the unit's Documentation= points there.
set(CMAKE_INSTALL_DOCDIR "share/doc/kmscope" CACHE PATH "Documentation root (DOCDIR)")
include(GNUInstallDirs)
set(KMSCOPE_FULL_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(KMSCOPE_FULL_SYSCONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR})
set(KMSCOPE_FULL_DATADIR ${CMAKE_INSTALL_FULL_DATADIR})
set(KMSCOPE_FULL_DOCDIR ${CMAKE_INSTALL_FULL_DOCDIR})

# systemd's system unit folder, relative to the install prefix: pkg-config's systemdsystemunitdir
# (Debian 12: /lib/systemd/system, which is /usr/lib/systemd/system on a merged-/usr system) with
# systemd's own prefix taken off, so that `--prefix /tmp/stage` stays inside the stage.
if(NOT DEFINED CACHE{KMSCOPE_SYSTEMD_UNITDIR})
  set(_unitdir lib/systemd/system)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_get_variable(_sd_unitdir systemd systemdsystemunitdir)
    pkg_get_variable(_sd_prefix systemd prefix)
    if(_sd_unitdir)
      string(REGEX REPLACE "^${_sd_prefix}/" "/" _sd_unitdir "${_sd_unitdir}")
      string(REGEX REPLACE "^/+" "" _unitdir "${_sd_unitdir}")
    endif()
  endif()
  set(KMSCOPE_SYSTEMD_UNITDIR ${_unitdir} CACHE PATH "systemd system unit folder, relative to the prefix")
endif()
if(IS_ABSOLUTE "${KMSCOPE_SYSTEMD_UNITDIR}")
  set(KMSCOPE_UNIT_FILE ${KMSCOPE_SYSTEMD_UNITDIR}/kms-replay.service)
else()
  set(KMSCOPE_UNIT_FILE ${CMAKE_INSTALL_PREFIX}/${KMSCOPE_SYSTEMD_UNITDIR}/kms-replay.service)
endif()

# The service: the unit with ExecStart at the installed binary, and the example INI both as the
# configuration (/etc/kms-replay/ for prefix /usr; a conffile in the Debian package) and as an example.
# The package does not enable or start the unit (see cmake/KmscopePackaging.cmake).
# The build tree's copy has the configured bindir; the installed one is configured again at install time,
# so that `cmake --install --prefix DIR` gives ExecStart=DIR/bin/kms-replay (with DESTDIR, the prefix).
configure_file(${PROJECT_SOURCE_DIR}/replay/kms-replay.service.in ${PROJECT_BINARY_DIR}/kms-replay.service @ONLY)
set(_unit_out ${PROJECT_BINARY_DIR}/install-time/kms-replay.service)
if(IS_ABSOLUTE "${CMAKE_INSTALL_BINDIR}")
  set(_unit_bindir "${CMAKE_INSTALL_BINDIR}")
else()
  set(_unit_bindir "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}")
endif()
install(CODE "set(KMSCOPE_FULL_BINDIR \"${_unit_bindir}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/replay/kms-replay.service.in\" \"${_unit_out}\" @ONLY)"
  COMPONENT tools)
install(FILES ${_unit_out} DESTINATION ${KMSCOPE_SYSTEMD_UNITDIR} COMPONENT tools)
# GNUInstallDirs maps prefix /usr to /etc (and /opt/X to /etc/opt/X) in CMAKE_INSTALL_FULL_SYSCONFDIR
# only; elsewhere the relative folder keeps `cmake --install --prefix DIR` inside DIR.
if(CMAKE_INSTALL_FULL_SYSCONFDIR STREQUAL "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}")
  set(KMSCOPE_SYSCONF_DESTINATION ${CMAKE_INSTALL_SYSCONFDIR})
else()
  set(KMSCOPE_SYSCONF_DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/replay/kms-replay.ini DESTINATION ${KMSCOPE_SYSCONF_DESTINATION}/kms-replay
        COMPONENT tools)
install(FILES ${PROJECT_SOURCE_DIR}/replay/kms-replay.ini DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples
        COMPONENT tools)

# The product table kms-analyze has built in, as a reference and a template for --products.
install(FILES ${PROJECT_SOURCE_DIR}/data/products.csv DESTINATION ${CMAKE_INSTALL_DATADIR}/kmscope COMPONENT tools)

# Documentation. LICENSE and CHANGELOG.md are installed when present (OPTIONAL); the plugin's README
# goes with the plugin.
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/CHANGELOG.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT tools OPTIONAL)
foreach(dir analyzer replay data captures)
  install(FILES ${PROJECT_SOURCE_DIR}/${dir}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}/${dir} COMPONENT tools
          OPTIONAL)
endforeach()
if(EXISTS ${PROJECT_SOURCE_DIR}/docs)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs COMPONENT tools
          PATTERN "*.sh" EXCLUDE PATTERN "*.py" EXCLUDE)
endif()
if(KMSCOPE_BUILD_DISSECTOR)
  install(FILES ${PROJECT_SOURCE_DIR}/dissector/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}/dissector
          COMPONENT wireshark-plugin)
  # The colouring rules and the configuration profile, for the user to import (dissector/README.md).
  install(FILES ${PROJECT_SOURCE_DIR}/dissector/profile/kms.colorfilters
          DESTINATION ${CMAKE_INSTALL_DATADIR}/kmscope/wireshark COMPONENT wireshark-plugin)
  install(FILES ${PROJECT_SOURCE_DIR}/dissector/profile/kmscope/preferences
          DESTINATION ${CMAKE_INSTALL_DATADIR}/kmscope/wireshark/profiles/kmscope COMPONENT wireshark-plugin)
endif()

# bash completion (written by hand; tests/packaging checks them against --help).
install(FILES ${PROJECT_SOURCE_DIR}/completions/kms-analyze ${PROJECT_SOURCE_DIR}/completions/kms-replay
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions COMPONENT tools)

# Manual pages, made at build time from one source each and installed gzipped (as Debian ships them):
#  - kms-analyze(1), kms-replay(1): help2man from the programs' --help and --version, with the
#    sections --help cannot give (EXIT STATUS, FILES, EXAMPLES, SEE ALSO) from man/<tool>.h2m.in;
#    kms-replay's COMMANDS section is generated from `kms-replay SUBCOMMAND --help` (man/subcommands.py).
#  - kmscope-wireshark(7): the plugin's fields, preferences and statistics, from man/kmscope-wireshark.7.scd
#    (scdoc). Section 7 is where protocols are described (tcp(7), udp(7)); the page is not a command,
#    and the name avoids "kms", which is also the kernel's mode setting (drm-kms(7)).
find_program(HELP2MAN_EXECUTABLE help2man)
find_program(SCDOC_EXECUTABLE scdoc)
find_program(GZIP_EXECUTABLE gzip)
set(KMSCOPE_MAN_DIR ${PROJECT_BINARY_DIR}/man)
file(MAKE_DIRECTORY ${KMSCOPE_MAN_DIR})
set(KMSCOPE_MAN_PAGES)
set(KMSCOPE_TOOL_MANPAGES OFF)   # what tests/packaging checks
set(KMSCOPE_PLUGIN_MANPAGE OFF)
# Dates in the pages come from the last commit when there is one, so rebuilding gives the same page.
set(KMSCOPE_MAN_ENV)
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS ${PROJECT_SOURCE_DIR}/.git)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${PROJECT_SOURCE_DIR} log -1 --format=%ct
                  OUTPUT_VARIABLE _epoch OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
  if(_rc EQUAL 0 AND _epoch MATCHES "^[0-9]+$")
    set(KMSCOPE_MAN_ENV SOURCE_DATE_EPOCH=${_epoch})
  endif()
endif()

# kmscope_man(PAGE SECTION COMPONENT [PRE COMMAND...] COMMAND... DEPENDS ...): PAGE.SECTION built by
# COMMAND (after PRE, which makes an input for it), then PAGE.SECTION.gz installed in man<SECTION>.
function(kmscope_man page section component)
  cmake_parse_arguments(PARSE_ARGV 3 arg "" "" "PRE;COMMAND;DEPENDS")
  set(out ${KMSCOPE_MAN_DIR}/${page}.${section})
  set(pre)
  if(arg_PRE)
    set(pre COMMAND ${arg_PRE})
  endif()
  add_custom_command(OUTPUT ${out} ${out}.gz
    ${pre}
    COMMAND ${CMAKE_COMMAND} -E env ${KMSCOPE_MAN_ENV} ${arg_COMMAND}
    COMMAND ${GZIP_EXECUTABLE} -9 -n -f -k ${out}
    DEPENDS ${arg_DEPENDS}
    WORKING_DIRECTORY ${KMSCOPE_MAN_DIR}
    COMMENT "Manual page ${page}(${section})"
    VERBATIM)
  install(FILES ${out}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section} COMPONENT ${component})
  set(KMSCOPE_MAN_PAGES ${KMSCOPE_MAN_PAGES} ${out} PARENT_SCOPE)
endfunction()

if(NOT GZIP_EXECUTABLE)
  message(STATUS "kmscope: gzip not found: skipping the manual pages")
else()
  # help2man runs the programs: not in sanitizer or fuzz builds (nobody installs those) nor when the
  # programs cannot run here.
  if(KMSCOPE_SANITIZE OR KMSCOPE_FUZZ OR CMAKE_CROSSCOMPILING)
    message(STATUS "kmscope: skipping kms-analyze(1) and kms-replay(1) (sanitizer, fuzz or cross build)")
  elseif(HELP2MAN_EXECUTABLE)
    set(KMSCOPE_TOOL_MANPAGES ON)
    configure_file(${PROJECT_SOURCE_DIR}/man/kms-analyze.h2m.in ${KMSCOPE_MAN_DIR}/kms-analyze.h2m @ONLY)
    configure_file(${PROJECT_SOURCE_DIR}/man/kms-replay.h2m.in ${KMSCOPE_MAN_DIR}/kms-replay.h2m @ONLY)
    set(_h2m ${HELP2MAN_EXECUTABLE} --no-info --no-discard-stderr --section=1)
    kmscope_man(kms-analyze 1 tools
      COMMAND ${_h2m} --include=${KMSCOPE_MAN_DIR}/kms-analyze.h2m --output=${KMSCOPE_MAN_DIR}/kms-analyze.1
              $<TARGET_FILE:kms-analyze>
      DEPENDS kms-analyze ${KMSCOPE_MAN_DIR}/kms-analyze.h2m)
    kmscope_man(kms-replay 1 tools
      PRE ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/man/subcommands.py $<TARGET_FILE:kms-replay>
              ${KMSCOPE_MAN_DIR}/kms-replay-commands.h2m serve check send status
      COMMAND ${_h2m} --include=${KMSCOPE_MAN_DIR}/kms-replay-commands.h2m
              --include=${KMSCOPE_MAN_DIR}/kms-replay.h2m --output=${KMSCOPE_MAN_DIR}/kms-replay.1
              $<TARGET_FILE:kms-replay>
      DEPENDS kms-replay ${KMSCOPE_MAN_DIR}/kms-replay.h2m ${PROJECT_SOURCE_DIR}/man/subcommands.py)
  else()
    message(STATUS "kmscope: help2man not found (Debian: help2man): skipping kms-analyze(1) and kms-replay(1)")
  endif()
  if(NOT KMSCOPE_BUILD_DISSECTOR)
    # Said above: the plugin is skipped, and its page with it.
  elseif(SCDOC_EXECUTABLE)
    set(KMSCOPE_PLUGIN_MANPAGE ON)
    kmscope_man(kmscope-wireshark 7 wireshark-plugin
      COMMAND sh -c "\"$0\" < \"$1\" > \"$2\"" ${SCDOC_EXECUTABLE}
              ${PROJECT_SOURCE_DIR}/man/kmscope-wireshark.7.scd ${KMSCOPE_MAN_DIR}/kmscope-wireshark.7
      DEPENDS ${PROJECT_SOURCE_DIR}/man/kmscope-wireshark.7.scd)
  else()
    message(STATUS "kmscope: scdoc not found (Debian: scdoc): skipping kmscope-wireshark(7)")
  endif()
endif()
if(KMSCOPE_MAN_PAGES)
  add_custom_target(kmscope-man ALL DEPENDS ${KMSCOPE_MAN_PAGES})
endif()
