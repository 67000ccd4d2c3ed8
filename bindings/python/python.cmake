# The Python binding (bindings/python/toolwarden, over libtoolwarden.so) and the example agent loop
# (examples/agent_loop). Included from the tests section of the top-level CMakeLists.txt, after
# tests/tests.cmake (which finds Python 3). See docs/python.md.
if(NOT Python3_EXECUTABLE)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
endif()

set(TW_PY_DIR ${PROJECT_SOURCE_DIR}/bindings/python)
set(TW_PY_ENV
    "TOOLWARDEN_LIBRARY=$<TARGET_FILE:toolwarden_c>"
    "TOOLWARDEN_BINARY=$<TARGET_FILE:toolwarden>"
    "TOOLWARDEN_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
    "PYTHONPATH=${TW_PY_DIR}"
    "PYTHONDONTWRITEBYTECODE=1")

# Under the sanitizers the library needs the ASan runtime loaded before anything else, which python3
# does not do: preload it (and UBSan's), and leave leak checking off (CPython does not free everything
# at exit). Only GCC's runtime is known here; with another compiler the in-process tests are left out.
set(TW_PY_IN_PROCESS ON)
if(TOOLWARDEN_SANITIZE)
  set(TW_PY_IN_PROCESS OFF)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE TW_ASAN_RUNTIME OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libubsan.so
                    OUTPUT_VARIABLE TW_UBSAN_RUNTIME OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(IS_ABSOLUTE "${TW_ASAN_RUNTIME}" AND IS_ABSOLUTE "${TW_UBSAN_RUNTIME}")
      list(APPEND TW_PY_ENV "LD_PRELOAD=${TW_ASAN_RUNTIME} ${TW_UBSAN_RUNTIME}"
                            "ASAN_OPTIONS=detect_leaks=0")
      set(TW_PY_IN_PROCESS ON)
    endif()
  endif()
endif()

# One CTest test per unittest module of bindings/python/tests.
function(toolwarden_python_test name module)
  add_test(NAME ${name}
           COMMAND ${Python3_EXECUTABLE} -m unittest -v ${module}
           WORKING_DIRECTORY ${TW_PY_DIR}/tests)
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${TW_PY_ENV}" TIMEOUT 300)
endfunction()
toolwarden_python_test(python_sidecar test_sidecar)          # SidecarSession over `toolwarden serve`
toolwarden_python_test(python_draft_sidecar test_draft_sidecar)  # drafting over `serve --llm`
if(TW_PY_IN_PROCESS)
  toolwarden_python_test(python_native test_native)            # Policy, Session, guard in-process
  toolwarden_python_test(python_draft test_draft)              # Session.draft/update, fake model
  toolwarden_python_test(python_conformance test_conformance)  # tests/conformance through the binding
  toolwarden_python_test(example_agent_loop_verdict test_example)  # the example's verdict can fail
endif()

# The example: a scripted AgentDojo banking injection, in-process, over a sidecar it starts itself,
# and every user task under every injection task.
set(TW_AGENT_LOOP ${PROJECT_SOURCE_DIR}/examples/agent_loop/agent_loop.py)
add_test(NAME example_agent_loop_sidecar
         COMMAND ${Python3_EXECUTABLE} ${TW_AGENT_LOOP} --toolwarden $<TARGET_FILE:toolwarden>)
set_tests_properties(example_agent_loop_sidecar PROPERTIES ENVIRONMENT "${TW_PY_ENV}" TIMEOUT 300)
if(TW_PY_IN_PROCESS)
  add_test(NAME example_agent_loop COMMAND ${Python3_EXECUTABLE} ${TW_AGENT_LOOP})
  add_test(NAME example_agent_loop_all COMMAND ${Python3_EXECUTABLE} ${TW_AGENT_LOOP} --all)
  set_tests_properties(example_agent_loop example_agent_loop_all PROPERTIES
                       ENVIRONMENT "${TW_PY_ENV}" TIMEOUT 300)
endif()
