#include "filter.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <set>

namespace kmscope::analyzer {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool contains(const std::string& haystack, const std::string& lower_needle) {
    return lower(haystack).find(lower_needle) != std::string::npos;
}

template <class T>
std::optional<T> number(std::string_view s) {
    T v{};
    if (s.empty()) return std::nullopt;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

// "1.2.3.4" or "::1" (no brackets, no port) into `m`.
bool parse_address(std::string_view text, AddressMatch& m) {
    auto e = capture::endpoint_from_text(text, 0);
    if (!e) return false;
    m.addr = e->addr;
    m.v6 = e->v6;
    m.prefix = e->v6 ? 128 : 32;
    return true;
}

}  // namespace

// The forms of client= and server=: ADDR, ADDR:PORT, [V6], [V6]:PORT, ADDR/N.
std::optional<AddressMatch> parse_address_match(std::string_view v) {
    AddressMatch m;
    if (auto slash = v.find('/'); slash != std::string_view::npos) {
        auto bits = number<unsigned>(v.substr(slash + 1));
        if (!parse_address(v.substr(0, slash), m) || !bits || *bits > m.prefix) return std::nullopt;
        m.prefix = *bits;
        return m;
    }
    if (!v.empty() && v.front() == '[') {
        auto close = v.find(']');
        if (close == std::string_view::npos || !parse_address(v.substr(1, close - 1), m) || !m.v6)
            return std::nullopt;
        std::string_view rest = v.substr(close + 1);
        if (rest.empty()) return m;
        if (rest.front() != ':' || !(m.port = number<std::uint16_t>(rest.substr(1)))) return std::nullopt;
        return m;
    }
    if (parse_address(v, m)) return m;  // IPv4, or IPv6 without a port
    auto colon = v.rfind(':');
    if (colon == std::string_view::npos || !parse_address(v.substr(0, colon), m) || m.v6) return std::nullopt;
    if (!(m.port = number<std::uint16_t>(v.substr(colon + 1)))) return std::nullopt;
    return m;
}

// A record's "ip:port" or "[v6]:port" endpoint against an address filter.
bool endpoint_matches(const std::string& endpoint, const AddressMatch& m) {
    const auto colon = endpoint.rfind(':');
    if (colon == std::string::npos) return false;
    std::string_view addr(endpoint.data(), colon);
    if (!addr.empty() && addr.front() == '[') addr = addr.substr(1, addr.size() - 2);
    AddressMatch e;
    if (!parse_address(addr, e) || e.v6 != m.v6) return false;
    if (m.port && number<std::uint16_t>(std::string_view(endpoint).substr(colon + 1)) != m.port) return false;
    const unsigned whole = m.prefix / 8, rest = m.prefix % 8;
    if (std::memcmp(e.addr.data(), m.addr.data(), whole) != 0) return false;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
    return (e.addr[whole] & mask) == (m.addr[whole] & mask);
}

namespace {

// version=: an optional "v", a major number and an optional ".minor" (the JSON's "6.0", the table's "v6").
std::optional<VersionMatch> parse_version_match(std::string_view v) {
    if (!v.empty() && (v.front() == 'v' || v.front() == 'V')) v.remove_prefix(1);
    VersionMatch m;
    const auto dot = v.find('.');
    auto major = number<std::uint16_t>(v.substr(0, dot));
    if (!major) return std::nullopt;
    m.major = *major;
    if (dot != std::string_view::npos && !(m.minor = number<std::uint16_t>(v.substr(dot + 1)))) return std::nullopt;
    return m;
}

const std::set<std::string>& verdict_names() {
    static const std::set<std::string> names{"ok", "fail", "response", "hresult", "fault", "no_response", "orphan"};
    return names;
}

bool matches(const Filter& f, const FilterValue& value, const Record& record, const ProductTable& products) {
    if (f.key == "client" || f.key == "server") {
        const std::string& ep = std::visit(
            [&](const auto& r) -> const std::string& { return f.key == "client" ? r.client : r.server; }, record);
        return endpoint_matches(ep, std::get<AddressMatch>(value));
    }
    const auto* r = std::get_if<ExchangeRecord>(&record);
    if (!r) return false;
    const kms::BaseRequest* req = r->x.request ? &r->x.request->base : nullptr;
    if (f.key == "version") {
        const auto& m = std::get<VersionMatch>(value);
        auto v = r->version();
        return v && v->major == m.major && (!m.minor || v->minor == *m.minor);
    }
    if (f.key == "verdict") {
        const std::string& name = std::get<VerdictMatch>(value).name;
        if (name == "ok") return r->x.ok();
        if (name == "fail") return !r->x.ok();
        return name == outcome_name(r->x.outcome);
    }
    if (f.key == "cmid") {
        const Guid& g = std::get<Guid>(value);
        return (req && req->cmid == g) || (r->x.response && r->x.response->base.cmid == g);
    }
    if (!req) return false;
    if (f.key == "kms_id") return req->kms_id == std::get<Guid>(value);
    const std::string& needle = std::get<TextMatch>(value).lower;
    if (f.key == "workstation") return contains(req->workstation(), needle);
    for (const Guid* g : {&req->sku_id, &req->kms_id, &req->app_id})  // product
        if (contains(products.name_or_guid(*g), needle) || contains(g->to_string(), needle)) return true;
    return false;
}

// One value of `key`, or an error sentence saying what the value should look like.
std::optional<FilterValue> parse_value(const std::string& key, const std::string& v, std::string& error) {
    if (key == "client" || key == "server") {
        if (auto m = parse_address_match(v)) return *m;
        error = key + "='" + v + "' is not an address, address:port, [IPv6]:port or address/prefix";
    } else if (key == "version") {
        if (auto m = parse_version_match(v)) return *m;
        error = "version='" + v + "' is not a protocol version (4, 5, 6, 6.0 or v6)";
    } else if (key == "verdict") {
        if (verdict_names().count(lower(v))) return VerdictMatch{lower(v)};
        error = "unknown verdict '" + v + "' (ok, fail, response, hresult, fault, no_response, orphan)";
    } else if (key == "cmid" || key == "kms_id") {
        if (auto g = Guid::parse(v)) return *g;
        error = key + "='" + v + "' is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)";
    } else {
        return TextMatch{lower(v)};  // product, workstation
    }
    return std::nullopt;
}

}  // namespace

std::optional<Filter> parse_filter(const std::string& text, std::string& error) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
        error = "filter '" + text + "' is not KEY=VALUE";
        return std::nullopt;
    }
    Filter f;
    f.key = lower(text.substr(0, eq));
    static const std::set<std::string> keys{"client",  "server", "product", "workstation",
                                            "version", "verdict", "cmid",   "kms_id"};
    if (!keys.count(f.key)) {
        error = "unknown filter key '" + f.key + "' (" + kFilterKeys + ")";
        return std::nullopt;
    }
    const std::string rest = text.substr(eq + 1);
    std::size_t start = 0;
    while (start <= rest.size()) {
        auto comma = rest.find(',', start);
        std::string v = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!v.empty()) {
            auto value = parse_value(f.key, v, error);
            if (!value) return std::nullopt;
            f.values.push_back(std::move(*value));
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (f.values.empty()) {
        error = "filter '" + text + "' has no value";
        return std::nullopt;
    }
    return f;
}

bool passes(const std::vector<Filter>& filters, const Record& record, const ProductTable& products) {
    for (const auto& f : filters) {
        bool any = false;
        for (const auto& v : f.values)
            if ((any = matches(f, v, record, products))) break;
        if (!any) return false;
    }
    return true;
}

}  // namespace kmscope::analyzer
