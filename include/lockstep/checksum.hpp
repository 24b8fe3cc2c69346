// A 64-bit FNV-1a checksum of raw bytes: cheap, order-sensitive, and the same on every machine.
// Used to compare replicas' weights bitwise and to fingerprint checkpoints and teachers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lockstep {

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t seed = 0xcbf29ce484222325ull);
// The same construction over 8-byte words (a tail shorter than 8 bytes byte by byte): about 8x
// faster, for large weight buffers compared during training.
uint64_t fnv1a64_words(const void* data, size_t bytes);
std::string hex64(uint64_t v);

}  // namespace lockstep
