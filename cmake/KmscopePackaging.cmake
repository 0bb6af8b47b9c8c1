# CPack: Debian packages (`make package`, or `cpack --config <build>/CPackConfig.cmake`), one per install
# component (cmake/KmscopeInstall.cmake):
#   kmscope                    tools: kms-analyze, kms-replay, its systemd unit (installed disabled and not
#                              started) and configuration, man pages, product CSV, docs, bash completion;
#   kmscope-wireshark-plugin   wireshark-plugin: kms.so for the Wireshark minor version it was built
#                              against, and kmscope-wireshark(7).
# Depends come from dpkg-shlibdeps (the plugin's includes the libwireshark it was built against).
# Packages need the build configured with -DCMAKE_INSTALL_PREFIX=/usr: the unit's ExecStart and
# /etc are fixed at configure time (the Makefile's `package` target does that).

# Also the packaging tests (tests/packaging/), which need every target defined.
if(KMSCOPE_TESTS)
  add_subdirectory(${PROJECT_SOURCE_DIR}/tests/packaging ${PROJECT_BINARY_DIR}/tests/packaging)
endif()

set(KMSCOPE_DEB_MAINTAINER "kmscope maintainers <maintainers@kmscope.invalid>"
    CACHE STRING "Maintainer field of the Debian packages (Name <address>)")
set(_deb ${PROJECT_BINARY_DIR}/debian)
file(MAKE_DIRECTORY ${_deb}/tools ${_deb}/wireshark-plugin)

# Debian wants /usr/share/doc/<package>/copyright in every package (machine-readable format, pointing at
# the system's copy of the GPL). Installed only in component installs (EXCLUDE_FROM_ALL), which is
# what CPack does; a plain `cmake --install` has LICENSE in the doc folder instead.
set(_copyright "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kmscope
Upstream-Contact: ${KMSCOPE_DEB_MAINTAINER}
Source: ${CMAKE_PROJECT_HOMEPAGE_URL}

Files: *
Copyright: 2026 the kmscope authors
License: GPL-2.0-or-later
Comment: The plugin links libwireshark (GPL-2.0-or-later). The provenance of the bundled
 product data is in /usr/share/doc/kmscope/LICENSE and /usr/share/doc/kmscope/data/README.md.

License: GPL-2.0-or-later
 This program is free software; you can redistribute it and/or modify it under the terms of the
 GNU General Public License as published by the Free Software Foundation; either version 2 of the
 License, or (at your option) any later version.
 .
 This program is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY; without
 even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the GNU
 General Public License for more details.
 .
 On Debian systems, the complete text of the GNU General Public License version 2 can be found in
 /usr/share/common-licenses/GPL-2.
")
file(WRITE ${_deb}/copyright "${_copyright}")
install(FILES ${_deb}/copyright DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kmscope COMPONENT tools EXCLUDE_FROM_ALL)
if(KMSCOPE_BUILD_DISSECTOR)
  install(FILES ${_deb}/copyright DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kmscope-wireshark-plugin
          COMPONENT wireshark-plugin EXCLUDE_FROM_ALL)
endif()

# Changelogs. The packages are non-native (version ${PROJECT_VERSION}-${KMSCOPE_DEB_RELEASE}): each has the upstream
# CHANGELOG.md as changelog.gz and a one-entry Debian changelog, changelog.Debian.gz (gzip -9n), dated
# by the last commit so that rebuilding gives the same package.
set(KMSCOPE_DEB_RELEASE 1 CACHE STRING "Debian revision of the packages (VERSION-REVISION)")
set(_when "${KMSCOPE_MAN_ENV}")
string(REGEX REPLACE "^SOURCE_DATE_EPOCH=" "" _when "${_when}")
if(NOT _when)
  string(TIMESTAMP _when "%s" UTC)
endif()
execute_process(COMMAND date -u -R -d @${_when} OUTPUT_VARIABLE _date OUTPUT_STRIP_TRAILING_WHITESPACE)
file(WRITE ${_deb}/changelog.Debian "kmscope (${PROJECT_VERSION}-${KMSCOPE_DEB_RELEASE}) unstable; urgency=medium

  * Packages kmscope ${PROJECT_VERSION} built with CPack (cmake/KmscopePackaging.cmake);
    the changes are in changelog.gz.

 -- ${KMSCOPE_DEB_MAINTAINER}  ${_date}
")
set(_changelogs ${_deb}/changelog.Debian.gz)
execute_process(COMMAND gzip -9 -n -f ${_deb}/changelog.Debian)
if(EXISTS ${PROJECT_SOURCE_DIR}/CHANGELOG.md)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/CHANGELOG.md)
  execute_process(COMMAND gzip -9 -n -c ${PROJECT_SOURCE_DIR}/CHANGELOG.md OUTPUT_FILE ${_deb}/changelog.gz)
  list(APPEND _changelogs ${_deb}/changelog.gz)
endif()
install(FILES ${_changelogs} DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kmscope COMPONENT tools EXCLUDE_FROM_ALL)
if(KMSCOPE_BUILD_DISSECTOR)
  install(FILES ${_changelogs} DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kmscope-wireshark-plugin
          COMPONENT wireshark-plugin EXCLUDE_FROM_ALL)
endif()

# Maintainer scripts of kmscope. The unit is never enabled or started by the package: a KMS host
# appearing on a network is exactly what security teams hunt for. An administrator who enabled it gets
# it restarted on upgrade (try-restart: only if running) and stopped on removal.
file(WRITE ${_deb}/tools/conffiles "${CMAKE_INSTALL_FULL_SYSCONFDIR}/kms-replay/kms-replay.ini\n")
file(WRITE ${_deb}/tools/postinst [=[#!/bin/sh
set -e
# kms-replay.service is installed disabled and is not started: enable it deliberately with
#   systemctl enable --now kms-replay
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
    if [ -n "$2" ]; then
        deb-systemd-invoke try-restart kms-replay.service >/dev/null || true
    fi
fi
exit 0
]=])
file(WRITE ${_deb}/tools/prerm [=[#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop kms-replay.service >/dev/null 2>&1 || true
fi
exit 0
]=])
file(WRITE ${_deb}/tools/postrm [=[#!/bin/sh
set -e
if [ "$1" = purge ]; then
    # The enablement an administrator made, and the service's state (identity, database) and logs
    # (DynamicUser keeps them under private/).
    rm -f /etc/systemd/system/multi-user.target.wants/kms-replay.service
    rm -rf /var/lib/kms-replay /var/lib/private/kms-replay /var/log/kms-replay /var/log/private/kms-replay
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
exit 0
]=])
foreach(script postinst prerm postrm)
  file(CHMOD ${_deb}/tools/${script} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
       WORLD_READ WORLD_EXECUTE)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kmscope)
set(CPACK_PACKAGE_VENDOR "the kmscope authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_HOMEPAGE_URL ${CMAKE_PROJECT_HOMEPAGE_URL})
set(CPACK_PACKAGE_CONTACT "${KMSCOPE_DEB_MAINTAINER}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Absolute destinations (/etc) land in the package, not on the building machine.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_THREADS 1)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL tools)
if(KMSCOPE_BUILD_DISSECTOR)
  list(APPEND CPACK_COMPONENTS_ALL wireshark-plugin)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${KMSCOPE_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${KMSCOPE_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE ${CMAKE_PROJECT_HOMEPAGE_URL})
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME kmscope)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SUGGESTS kmscope-wireshark-plugin)
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA
    "${_deb}/tools/conffiles;${_deb}/tools/postinst;${_deb}/tools/prerm;${_deb}/tools/postrm")
# Descriptions: first line the summary; lines of at most 79 characters (Debian policy 3.4.1).
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "Microsoft KMS activation protocol analyzer and test server
kmscope decodes, decrypts and verifies Microsoft Key Management Service (KMS)
activations, protocol versions 4, 5 and 6 (DCE/RPC over TCP, port 1688), as a
Windows or Office client would.
.
kms-analyze finds every KMS activation in pcap and pcapng files and prints one
record per exchange (table, JSON lines or CSV) with its verdict: which check
failed, which HRESULT the server returned, which connections were never
answered, and which server implementation (vlmcsd, py-kms) answered.
.
kms-replay serves as a KMS host for testing clients, checks recorded captures
against its server path offline, and replays recorded activations against a
live server, also as a load generator. Its systemd unit is installed disabled
and is not started.")

set(CPACK_DEBIAN_WIRESHARK-PLUGIN_PACKAGE_NAME kmscope-wireshark-plugin)
set(CPACK_DEBIAN_WIRESHARK-PLUGIN_PACKAGE_ENHANCES "wireshark, tshark")
set(CPACK_DEBIAN_WIRESHARK-PLUGIN_PACKAGE_SUGGESTS kmscope)
set(CPACK_DEBIAN_WIRESHARK-PLUGIN_DESCRIPTION "Microsoft KMS activation protocol dissector for Wireshark
This Wireshark and tshark plugin (kms.so, from kmscope) decodes, decrypts and
verifies Microsoft Key Management Service (KMS) activations, protocol
versions 4, 5 and 6, carried in DCE/RPC over TCP.
.
It shows every request and response field, decrypts v5 and v6 messages,
verifies each exchange (kms.valid, kms.failed_check), fingerprints the
server (vlmcsd, py-kms), raises expert infos, and adds two statistics
(exchanges and clients). It is built for Wireshark ${Wireshark_MAJOR_VERSION}.${Wireshark_MINOR_VERSION} and installed in
its system plugin folder; see kmscope-wireshark(7).")

# At cpack time: refuse a build whose install paths were fixed for another prefix.
# Each package's Description starts with its own summary line (CPACK_DEBIAN_<COMPONENT>_DESCRIPTION);
# CPackDeb would put the project's summary in front of it.
file(WRITE ${_deb}/CPackProjectConfig.cmake "
if(CPACK_GENERATOR STREQUAL \"DEB\")
  if(NOT \"${CMAKE_INSTALL_PREFIX}\" STREQUAL \"/usr\")
    message(FATAL_ERROR \"kmscope: Debian packages need a build configured with -DCMAKE_INSTALL_PREFIX=/usr \"
                        \"(this one has ${CMAKE_INSTALL_PREFIX}: the unit's ExecStart and /etc would be wrong)\")
  endif()
  unset(CPACK_PACKAGE_DESCRIPTION_SUMMARY)
endif()
")
set(CPACK_PROJECT_CONFIG_FILE ${_deb}/CPackProjectConfig.cmake)

include(CPack)
