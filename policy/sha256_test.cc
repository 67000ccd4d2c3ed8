#include "policy/sha256.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace toolwarden {
namespace {

struct Sha256Case {
  std::string name;
  std::string input;
  std::string hex;
};

std::vector<Sha256Case> Sha256Cases() {
  return {
      // NIST FIPS 180-4 examples (csrc.nist.gov "SHA256.pdf", "SHA2_Additional.pdf").
      {"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"448-bit", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"896-bit",
       "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
       "lmnopqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
      {"one million a", std::string(1000000, 'a'),
       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
      // Padding boundaries: 55 bytes is the longest message padded in one block,
      // 56 the shortest that needs two (values from coreutils sha256sum).
      {"55 a", std::string(55, 'a'),
       "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {"56 a", std::string(56, 'a'),
       "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {"63 a", std::string(63, 'a'),
       "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {"64 a", std::string(64, 'a'),
       "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {"119 a", std::string(119, 'a'),
       "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {"120 a", std::string(120, 'a'),
       "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {"NUL and non-UTF-8 bytes", std::string("a\0b\xff", 4),
       "a37cc3026aae4d519e0b19c298fa913b4dccfdf0658cbccbb7deaa0226d5acdb"},
  };
}

TEST_CASE("Sha256Hex matches the NIST and boundary vectors", "[sha256]") {
  for (const Sha256Case& c : Sha256Cases()) {
    INFO(c.name);
    CHECK(Sha256Hex(c.input) == c.hex);
  }
}

TEST_CASE("Sha256 gives the same digest however the input is split", "[sha256]") {
  for (const Sha256Case& c : Sha256Cases()) {
    if (c.input.size() > 1000) continue;
    const std::string_view input = c.input;
    for (size_t split = 0; split <= input.size(); ++split) {
      INFO(c.name << " split at " << split);
      Sha256 hash;
      hash.Update(input.substr(0, split));
      hash.Update(input.substr(split));
      CHECK(hash.HexDigest() == c.hex);
    }
  }
}

TEST_CASE("Sha256 fed one byte at a time matches the one-shot digest", "[sha256]") {
  const std::string input(1000, 'x');
  Sha256 hash;
  for (char ch : input) hash.Update(std::string_view(&ch, 1));
  CHECK(hash.HexDigest() == Sha256Hex(input));
}

TEST_CASE("Sha256::HexDigest does not disturb the running state", "[sha256]") {
  Sha256 hash;
  hash.Update("ab");
  CHECK(hash.HexDigest() == Sha256Hex("ab"));
  CHECK(hash.HexDigest() == Sha256Hex("ab"));
  hash.Update("c");
  CHECK(hash.HexDigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("Sha256 of nothing fed is the empty-message digest", "[sha256]") {
  Sha256 hash;
  hash.Update("");
  CHECK(hash.HexDigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace toolwarden
