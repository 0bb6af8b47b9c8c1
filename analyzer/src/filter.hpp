// --filter KEY=VALUE[,VALUE...]: which records are reported. Every filter must match; within one
// filter, any of its values may. client/server match any record; the others only exchanges.
// Each value is parsed once, when the option is read: a value that could never match (an address that
// is not one, a version that is not a number, a GUID with a typo) is an error, never a silent empty
// output.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kmscope/bytes.hpp"
#include "packet_source.hpp"
#include "kmscope/products.hpp"
#include "records.hpp"

namespace kmscope::analyzer {

/// client= / server=: an address with an optional port, or a CIDR prefix (no port).
struct AddressMatch {
    std::array<std::uint8_t, 16> addr{};  // IPv4 in the first 4 bytes
    bool v6 = false;
    unsigned prefix = 0;                  // bits compared: 32 or 128 unless a /N was given
    std::optional<std::uint16_t> port;
};

/// ADDR, ADDR:PORT, [V6], [V6]:PORT or ADDR/N; nullopt for anything else.
std::optional<AddressMatch> parse_address_match(std::string_view text);
/// A record's "ip:port" or "[v6]:port" endpoint against an address match.
bool endpoint_matches(const std::string& endpoint, const AddressMatch& m);

/// version=: "6", "6.0", "v6" (the table's form), "v6.0".
struct VersionMatch {
    std::uint16_t major = 0;
    std::optional<std::uint16_t> minor;
};

/// product= and workstation=: a case-insensitive substring (already lower case).
struct TextMatch {
    std::string lower;
};

/// verdict=: ok, fail, or an outcome name.
struct VerdictMatch {
    std::string name;
};

using FilterValue = std::variant<AddressMatch, VersionMatch, TextMatch, VerdictMatch, Guid>;

struct Filter {
    std::string key;  // client, server, product, workstation, version, verdict, cmid, kms_id
    std::vector<FilterValue> values;
};

/// Parses "key=value[,value]"; nullopt (with `error`) when malformed or when a value cannot match.
std::optional<Filter> parse_filter(const std::string& text, std::string& error);

/// True when the record passes every filter.
bool passes(const std::vector<Filter>& filters, const Record& record, const ProductTable& products);

/// The keys, for help texts and error messages.
inline constexpr const char* kFilterKeys = "client, server, product, workstation, version, verdict, cmid, kms_id";

}  // namespace kmscope::analyzer
