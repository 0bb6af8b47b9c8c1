#include "filter.hpp"

#include <algorithm>
#include <cctype>
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

// "ip:port" matches the whole endpoint or its address alone (IPv6 with or without brackets).
bool endpoint_matches(const std::string& endpoint, const std::string& value) {
    std::string addr = endpoint.substr(0, endpoint.rfind(':'));
    if (!addr.empty() && addr.front() == '[') addr = addr.substr(1, addr.size() - 2);
    const std::string v = lower(value), a = lower(addr);
    return v == lower(endpoint) || v == a || v == "[" + a + "]";
}

bool product_matches(const ExchangeRecord& r, const std::string& needle, const ProductTable& products) {
    if (!r.x.request) return false;
    const auto& b = r.x.request->base;
    for (const Guid* g : {&b.sku_id, &b.kms_id, &b.app_id})
        if (contains(products.name_or_guid(*g), needle) || contains(g->to_string(), needle)) return true;
    return false;
}

bool version_matches(const ExchangeRecord& r, const std::string& value) {
    auto v = r.version();
    if (!v) return false;
    return v->to_string() == value || std::to_string(v->major) == value;
}

bool verdict_matches(const ExchangeRecord& r, const std::string& value) {
    if (value == "ok") return r.x.ok();
    if (value == "fail") return !r.x.ok();
    return value == outcome_name(r.x.outcome);
}

bool one_matches(const Filter& f, const std::string& value, const Record& record, const ProductTable& products) {
    if (f.key == "client" || f.key == "server") {
        const std::string& ep = std::visit(
            [&](const auto& r) -> const std::string& { return f.key == "client" ? r.client : r.server; }, record);
        return endpoint_matches(ep, value);
    }
    const auto* r = std::get_if<ExchangeRecord>(&record);
    if (!r) return false;
    if (f.key == "product") return product_matches(*r, value, products);
    if (f.key == "version") return version_matches(*r, value);
    return verdict_matches(*r, value);
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
    static const std::set<std::string> keys{"client", "server", "product", "version", "verdict"};
    if (!keys.count(f.key)) {
        error = "unknown filter key '" + f.key + "' (client, server, product, version, verdict)";
        return std::nullopt;
    }
    std::string rest = text.substr(eq + 1);
    std::size_t start = 0;
    while (start <= rest.size()) {
        auto comma = rest.find(',', start);
        std::string v = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!v.empty()) f.values.push_back(f.key == "product" || f.key == "verdict" ? lower(v) : v);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (f.key == "verdict")
        for (const auto& v : f.values) {
            static const std::set<std::string> ok{"ok",    "fail",        "response", "hresult",
                                                  "fault", "no_response", "orphan"};
            if (!ok.count(v)) {
                error = "unknown verdict '" + v + "' (ok, fail, hresult, fault, no_response, orphan)";
                return std::nullopt;
            }
        }
    return f;
}

bool passes(const std::vector<Filter>& filters, const Record& record, const ProductTable& products) {
    for (const auto& f : filters) {
        bool any = false;
        for (const auto& v : f.values)
            if ((any = one_matches(f, v, record, products))) break;
        if (!any) return false;
    }
    return true;
}

}  // namespace kmscope::analyzer
