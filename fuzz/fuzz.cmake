# Fuzz targets (issue 7, docs/fuzzing.md). Included at the end of the top-level CMakeLists.txt, once
# every library target exists.
#
# TOOLWARDEN_FUZZ=ON (clang only): everything already defined is compiled with
# -fsanitize=fuzzer-no-link,address,undefined, and each target in fuzz/ is linked with
# -fsanitize=fuzzer into a libFuzzer binary. fuzz/run.sh configures and runs such a build.
#
# TOOLWARDEN_FUZZ=OFF (the normal build, GCC or clang, with or without TOOLWARDEN_SANITIZE): with
# TOOLWARDEN_BUILD_TESTS each target is linked with fuzz/replay_main.cc, a `main` that feeds it every
# file of the directories it is given, and CTest replays the committed regressions
# (fuzz/regressions/TARGET/) and a seed corpus that fuzz/make_seeds.py writes into the build tree
# from the conformance corpus at test time.
option(TOOLWARDEN_FUZZ "Build the fuzz targets as libFuzzer binaries (needs clang)" OFF)

set(TW_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
# Target name -> the libraries it needs.
set(TW_FUZZ_TARGETS policy_fuzz progent_import_fuzz decide_fuzz sidecar_fuzz mcp_proxy_fuzz
    llm_reply_fuzz)
set(TW_FUZZ_LIBS_policy_fuzz toolwarden_interpreter)
set(TW_FUZZ_LIBS_progent_import_fuzz toolwarden_interpreter)
set(TW_FUZZ_LIBS_decide_fuzz toolwarden_interpreter)
set(TW_FUZZ_LIBS_sidecar_fuzz toolwarden_http)
set(TW_FUZZ_LIBS_mcp_proxy_fuzz toolwarden_mcp)
set(TW_FUZZ_LIBS_llm_reply_fuzz toolwarden_llm)

# clang and the Debian ANTLR 4.9 C++ runtime (built with GCC): antlr4-runtime.h includes
# misc/InterpreterDataReader.h, whose `InterpreterData() {}` default-constructs a dfa::Vocabulary,
# a class with `const std::vector<std::string>` members and a defaulted default constructor. GCC
# accepts that; clang deletes the constructor ("call to implicitly-deleted default constructor of
# 'dfa::Vocabulary'") and stops, in every file that includes the runtime. The generated parser never
# uses InterpreterData, so clang builds get a copy of antlr4-runtime.h without that one include, in
# a directory searched before /usr/include/antlr4-runtime (the runtime's own quoted includes still
# resolve there). Runtime headers are left untouched; nothing else differs.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND TARGET toolwarden_grammar)
  set(tw_antlr_header /usr/include/antlr4-runtime/antlr4-runtime.h)
  foreach(dir IN LISTS antlr4-runtime_INCLUDE_DIR ANTLR4_INCLUDE_DIR)
    if(EXISTS ${dir}/antlr4-runtime.h)
      set(tw_antlr_header ${dir}/antlr4-runtime.h)
    endif()
  endforeach()
  file(READ ${tw_antlr_header} tw_antlr_text)
  string(REPLACE "#include \"misc/InterpreterDataReader.h\"" "" tw_antlr_text "${tw_antlr_text}")
  set(tw_antlr_overlay ${CMAKE_CURRENT_BINARY_DIR}/antlr4-clang)
  set(tw_antlr_old "")
  if(EXISTS ${tw_antlr_overlay}/antlr4-runtime.h)
    file(READ ${tw_antlr_overlay}/antlr4-runtime.h tw_antlr_old)
  endif()
  if(NOT tw_antlr_old STREQUAL tw_antlr_text)  # rewrite only on change: no needless rebuilds
    file(WRITE ${tw_antlr_overlay}/antlr4-runtime.h "${tw_antlr_text}")
  endif()
  # -I is searched before every -isystem directory, so this copy wins; only the files that include
  # the runtime get the flag.
  target_compile_options(toolwarden_grammar PRIVATE -I${tw_antlr_overlay})
  set_property(SOURCE ${CMAKE_SOURCE_DIR}/policy/internal/antlr_parse.cc APPEND PROPERTY
               COMPILE_OPTIONS -I${tw_antlr_overlay})
endif()

function(toolwarden_fuzz_target name)
  add_executable(${name} ${TW_FUZZ_DIR}/${name}.cc ${ARGN})
  target_link_libraries(${name} PRIVATE ${TW_FUZZ_LIBS_${name}})
  target_compile_options(${name} PRIVATE ${TW_WARNINGS})
  target_compile_definitions(${name} PRIVATE TOOLWARDEN_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
endfunction()

if(TOOLWARDEN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "TOOLWARDEN_FUZZ needs clang (libFuzzer); configure with "
                        "-DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Instrument every target of the directory (add_compile_options here would only reach targets
  # defined after this point), deferred to the end of the directory so that the test targets the
  # adapters define with DEFER CALL are included. Imported targets (the ANTLR runtime, RE2, ...)
  # are Debian's GCC-built libraries and stay uninstrumented.
  set(TW_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer)
  function(toolwarden_fuzz_instrument)
    get_property(targets DIRECTORY ${CMAKE_SOURCE_DIR} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t IN LISTS targets)
      get_target_property(type ${t} TYPE)
      if(t IN_LIST TW_FUZZ_TARGETS OR
         NOT type MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY|EXECUTABLE)$")
        continue()
      endif()
      target_compile_options(${t} PRIVATE ${TW_FUZZ_FLAGS})
      if(NOT type STREQUAL "STATIC_LIBRARY" AND NOT type STREQUAL "OBJECT_LIBRARY")
        target_link_options(${t} PRIVATE -fsanitize=address,undefined)
      endif()
    endforeach()
  endfunction()
  cmake_language(DEFER CALL toolwarden_fuzz_instrument)
  foreach(name IN LISTS TW_FUZZ_TARGETS)
    toolwarden_fuzz_target(${name})
    target_compile_options(${name} PRIVATE ${TW_FUZZ_FLAGS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  endforeach()
elseif(TOOLWARDEN_BUILD_TESTS)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  set(tw_seed_dir ${CMAKE_CURRENT_BINARY_DIR}/fuzz-seeds)
  if(Python3_Interpreter_FOUND)
    add_test(NAME fuzz:make_seeds
             COMMAND ${Python3_EXECUTABLE} ${TW_FUZZ_DIR}/make_seeds.py
                     --source ${CMAKE_SOURCE_DIR} --out ${tw_seed_dir})
    set_tests_properties(fuzz:make_seeds PROPERTIES FIXTURES_SETUP toolwarden_fuzz_seeds)
  endif()
  add_library(toolwarden_fuzz_replay OBJECT ${TW_FUZZ_DIR}/replay_main.cc)
  target_compile_options(toolwarden_fuzz_replay PRIVATE ${TW_WARNINGS})
  foreach(name IN LISTS TW_FUZZ_TARGETS)
    toolwarden_fuzz_target(${name} $<TARGET_OBJECTS:toolwarden_fuzz_replay>)
    add_test(NAME fuzz:${name}:regressions
             COMMAND ${name} ${TW_FUZZ_DIR}/regressions/${name})
    if(Python3_Interpreter_FOUND)
      add_test(NAME fuzz:${name}:seeds COMMAND ${name} ${tw_seed_dir}/${name})
      set_tests_properties(fuzz:${name}:seeds PROPERTIES FIXTURES_REQUIRED toolwarden_fuzz_seeds)
    endif()
  endforeach()
endif()
