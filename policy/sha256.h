// SHA-256 (FIPS 180-4), implemented here so toolwarden needs no crypto library.
//
// Use it for content fingerprints: naming which policy text or which input a
// decision was made from, cache keys, audit records. It is not a MAC and makes
// no constant-time promise: do not use it to compare secrets.
//
// Input is any bytes (std::string_view may hold NULs and non-UTF-8). Output is
// 64 lower-case hex digits. Nothing here fails or throws.
#ifndef TOOLWARDEN_POLICY_SHA256_H_
#define TOOLWARDEN_POLICY_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace toolwarden {

// Incremental hashing, for input that arrives in pieces:
//   Sha256 h;
//   h.Update("ab");
//   h.Update("c");
//   h.HexDigest();  // == Sha256Hex("abc")
// HexDigest() does not disturb the running state: calling it, then Update()
// again, then HexDigest() gives the digest of everything fed so far.
class Sha256 {
 public:
  Sha256();

  void Update(std::string_view data);
  std::string HexDigest() const;

 private:
  void Compress(const unsigned char* block);

  std::array<uint32_t, 8> state_;
  std::array<unsigned char, 64> buffer_;
  size_t buffered_ = 0;       // bytes waiting in buffer_, always < 64
  uint64_t total_bytes_ = 0;  // message length so far (wraps after 2^64 bytes)
};

// The SHA-256 of `data` as 64 lower-case hex digits.
std::string Sha256Hex(std::string_view data);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_SHA256_H_
