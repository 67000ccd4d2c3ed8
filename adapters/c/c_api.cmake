# The C API: libtoolwarden.so (exporting the tw_* functions of toolwarden.h and
# nothing else), its header, a pkg-config file and a CMake package
# (find_package(toolwarden) -> toolwarden::toolwarden). See docs/c-api.md.
# Included after adapters/llm/llm.cmake: the library drafts rules in-process
# (tw_session_draft), so it links toolwarden_llm and, through it, libcurl.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TW_C_DIR ${PROJECT_SOURCE_DIR}/adapters/c)

# Only tw_* is exported. -fvisibility=hidden covers toolwarden.cc; the version
# script also hides the statically linked C++ engine (and its template
# instantiations), so it cannot clash with another copy in the host process.
set(TW_C_VERSION_SCRIPT ${PROJECT_BINARY_DIR}/toolwarden_c.map)
file(CONFIGURE OUTPUT ${TW_C_VERSION_SCRIPT} CONTENT "TOOLWARDEN_0 {\n  global: tw_*;\n  local: *;\n};\n")

add_library(toolwarden_c SHARED ${TW_C_DIR}/toolwarden.cc)
target_link_libraries(toolwarden_c PRIVATE toolwarden_interpreter toolwarden_llm)
target_include_directories(toolwarden_c PUBLIC
  $<BUILD_INTERFACE:${TW_C_DIR}> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_definitions(toolwarden_c PRIVATE TOOLWARDEN_VERSION="${PROJECT_VERSION}")
target_compile_options(toolwarden_c PRIVATE ${TW_WARNINGS})
target_link_options(toolwarden_c PRIVATE "LINKER:--version-script=${TW_C_VERSION_SCRIPT}"
                    "LINKER:--no-undefined")
set_target_properties(toolwarden_c PROPERTIES
  OUTPUT_NAME toolwarden
  EXPORT_NAME toolwarden
  VERSION ${PROJECT_VERSION}
  SOVERSION 0
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON
  LINK_DEPENDS ${TW_C_VERSION_SCRIPT})

install(TARGETS toolwarden_c EXPORT toolwardenTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${TW_C_DIR}/toolwarden.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# pkg-config: the prefix is found from the .pc file's own place (${pcfiledir}),
# so `cmake --install build --prefix DIR` gives a working file in any DIR.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(TW_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH TW_PC_UP "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" TW_PC_UP "${TW_PC_UP}")
  set(TW_PC_PREFIX "\${pcfiledir}/${TW_PC_UP}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(TW_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(TW_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(TW_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(TW_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${TW_C_DIR}/toolwarden.pc.in ${PROJECT_BINARY_DIR}/toolwarden.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/toolwarden.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The CMake package.
set(TW_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/toolwarden)
install(EXPORT toolwardenTargets NAMESPACE toolwarden:: DESTINATION ${TW_CMAKE_DIR})
configure_package_config_file(${TW_C_DIR}/toolwardenConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/toolwardenConfig.cmake
                              INSTALL_DESTINATION ${TW_CMAKE_DIR})
# 0.x: the shared library's SOVERSION is 0 for the whole series.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/toolwardenConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/toolwardenConfig.cmake
              ${PROJECT_BINARY_DIR}/toolwardenConfigVersion.cmake
        DESTINATION ${TW_CMAKE_DIR})

# Tests: the Catch2 tests of the API (linked only against the shared library),
# and an outside project that installs the library and builds against it with
# find_package and with pkg-config. Deferred to the end of the directory: the
# Catch2 set-up comes later in CMakeLists.txt.
if(TOOLWARDEN_BUILD_TESTS)
  function(toolwarden_c_api_tests)
    # tests/llm/fake_llm.cc starts the fake model server (tests/llm/fake_llm.py) for the
    # drafting tests; it uses nothing of the engine, so the test still links only the library.
    add_executable(c_api_test ${TW_C_DIR}/c_api_test.cc ${PROJECT_SOURCE_DIR}/tests/llm/fake_llm.cc)
    target_include_directories(c_api_test PRIVATE ${PROJECT_SOURCE_DIR})
    target_link_libraries(c_api_test PRIVATE toolwarden_catch_main toolwarden_c
                                             nlohmann_json::nlohmann_json Threads::Threads)
    target_compile_options(c_api_test PRIVATE ${TW_WARNINGS})
    target_compile_definitions(c_api_test PRIVATE TOOLWARDEN_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                                   TOOLWARDEN_EXPECTED_VERSION="${PROJECT_VERSION}")
    catch_discover_tests(c_api_test TEST_PREFIX "c_api_test:")
    # Under the sanitizers the library needs the ASan runtime loaded first,
    # which a plain outside program does not do.
    if(NOT TOOLWARDEN_SANITIZE)
      add_test(NAME c_api_consumer
               COMMAND sh ${PROJECT_SOURCE_DIR}/tests/c_consumer/run.sh ${PROJECT_BINARY_DIR}
                       ${PROJECT_BINARY_DIR}/c_consumer_test ${CMAKE_INSTALL_LIBDIR}
                       ${PROJECT_SOURCE_DIR}/policies/examples/banking.policy)
      set_tests_properties(c_api_consumer PROPERTIES TIMEOUT 300)
    endif()
  endfunction()
  find_package(Threads REQUIRED)
  cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL toolwarden_c_api_tests)
endif()
