#include "community_id.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace kmscope::capture {

namespace {

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

// The specification's order: the smaller address first, or the smaller port when the addresses are equal.
bool in_order(const Endpoint& a, const Endpoint& b, std::size_t size) {
    const int c = std::memcmp(a.addr.data(), b.addr.data(), size);
    return c < 0 || (c == 0 && a.port <= b.port);
}

}  // namespace

std::string community_id(const Endpoint& a, const Endpoint& b, std::uint8_t proto, std::uint16_t seed) {
    const std::size_t size = a.v6 ? 16 : 4;
    const bool keep = in_order(a, b, size);
    const Endpoint& first = keep ? a : b;
    const Endpoint& second = keep ? b : a;
    std::vector<std::uint8_t> input;
    input.reserve(2 + 2 * size + 2 + 4);
    put16(input, seed);
    input.insert(input.end(), first.addr.begin(), first.addr.begin() + static_cast<std::ptrdiff_t>(size));
    input.insert(input.end(), second.addr.begin(), second.addr.begin() + static_cast<std::ptrdiff_t>(size));
    input.push_back(proto);
    input.push_back(0);  // padding
    put16(input, first.port);
    put16(input, second.port);
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int digest_size = 0;
    if (EVP_Digest(input.data(), input.size(), digest.data(), &digest_size, EVP_sha1(), nullptr) != 1)
        throw std::runtime_error("community_id: OpenSSL SHA-1 failed");
    std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> text{};
    const int n = EVP_EncodeBlock(text.data(), digest.data(), static_cast<int>(digest_size));
    return "1:" + std::string(reinterpret_cast<const char*>(text.data()), static_cast<std::size_t>(n));
}

}  // namespace kmscope::capture
