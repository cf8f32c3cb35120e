# Run by `cmake --install` (see CMakeLists.txt): writes the systemd units for the prefix
# being installed to, and the configuration files unless the operator's are there.
# Paths as GNUInstallDirs has them: configuration in /etc/loom for the prefix /usr,
# PREFIX/etc/loom otherwise; units in PREFIX/lib/systemd/system.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(etc "/etc")
else()
  set(etc "${prefix}/etc")
endif()
set(LOOM_BINDIR "${prefix}/${LOOM_BINDIR_NAME}")
set(LOOM_CONF_DIR "${etc}/loom")
set(LOOM_DOC_DIR "${prefix}/share/doc/loom")

set(unitdir "$ENV{DESTDIR}${prefix}/lib/systemd/system")
file(GLOB units RELATIVE "${LOOM_PACKAGING}/systemd" "${LOOM_PACKAGING}/systemd/*.service.in")
foreach(unit ${units})
  string(REGEX REPLACE "\\.in$" "" unit "${unit}")
  message(STATUS "Installing: ${unitdir}/${unit}")
  configure_file("${LOOM_PACKAGING}/systemd/${unit}.in" "${unitdir}/${unit}" @ONLY)
endforeach()

# An operator's edited configuration is never overwritten (the shipped one is also in
# the docs' examples/, to compare).
set(confdir "$ENV{DESTDIR}${LOOM_CONF_DIR}")
file(GLOB confs RELATIVE "${LOOM_PACKAGING}/etc" "${LOOM_PACKAGING}/etc/*.conf")
foreach(conf ${confs})
  if(EXISTS "${confdir}/${conf}")
    message(STATUS "Kept: ${confdir}/${conf}")
  else()
    file(INSTALL "${LOOM_PACKAGING}/etc/${conf}" DESTINATION "${confdir}"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endforeach()
