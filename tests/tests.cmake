# CLI-level tests (conformance corpus, golden files) are added in tests/tests.cmake
