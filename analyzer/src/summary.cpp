#include "summary.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "record_fields.hpp"

namespace kmscope::analyzer {

namespace {

using fields::key;
using fields::text;

template <class W>
void write_counter_fields(W& w, std::uint64_t requests, std::uint64_t ok, std::uint64_t failed,
                          const std::map<std::string, std::uint64_t>& by_status,
                          const std::set<std::string>& versions) {
    key(w, "requests"), w.Uint64(requests);
    key(w, "ok"), w.Uint64(ok);
    key(w, "failed"), w.Uint64(failed);
    key(w, "by_license_status");
    w.StartObject();
    for (const auto& [name, n] : by_status) key(w, name), w.Uint64(n);
    w.EndObject();
    key(w, "versions");
    w.StartArray();
    for (const auto& v : versions) text(w, v);
    w.EndArray();
}

template <class W>
void write_set(W& w, const char* name, const std::set<std::string>& values) {
    key(w, name);
    w.StartArray();
    for (const auto& v : values) text(w, v);
    w.EndArray();
}

template <class C>
std::string join(const C& values) {
    std::string out;
    for (const auto& v : values) {
        if (!out.empty()) out += ", ";
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>)
            out += v;
        else
            out += std::to_string(v);
    }
    return out.empty() ? std::string("-") : out;
}

std::string statuses(const std::map<std::string, std::uint64_t>& m) {
    std::string out;
    for (const auto& [k, v] : m) out += (out.empty() ? "" : ", ") + k + " " + std::to_string(v);
    return out.empty() ? std::string("-") : out;
}

unsigned long long ull(std::uint64_t v) {
    return static_cast<unsigned long long>(v);
}

}  // namespace

void Summary::add(const ExchangeRecord& r) {
    // A list of the report keeps its first kMaxListed distinct values (a py-kms server can send a new
    // ePID with every answer; the report must not grow with them).
    auto listed = [](auto& set, auto&& value) {
        if (set.size() < kMaxListed || set.count(value)) set.insert(std::forward<decltype(value)>(value));
    };
    const Exchange& x = r.x;
    const bool ok = x.ok();
    auto v = r.version();
    const std::string version = v ? v->to_string() : "-";
    auto count = [&](Counter& k) {
        ++k.requests;
        ++(ok ? k.ok : k.failed);
        if (x.request) ++k.by_status[std::string(license_status_name(x.request->base.license_status))];
        k.versions.insert(version);
    };
    const FileTime t = x.request_time.value_or(x.response_time.value_or(r.last_seen));
    latest_ = std::max(latest_, t);
    Client unlisted;  // a client past kMaxClients: counted in the totals, not itemised
    auto found = clients_.find(r.client_ip);
    if (found == clients_.end() && clients_.size() >= kMaxClients) ++unlisted_client_requests_;
    auto& cl = found != clients_.end() ? found->second
               : clients_.size() < kMaxClients ? clients_[r.client_ip]
                                               : unlisted;
    count(cl.c);
    listed(cl.servers, r.server);
    auto& sv = servers_[r.server];
    count(sv.c);
    if (x.response) {
        listed(sv.epids, x.response->base.epid);
        if (x.response->hwid) listed(sv.hwids, x.response->hwid->to_string());
        sv.counts.insert(x.response->base.count);
    }
    if (!ok) {
        std::string why = outcome_name(x.outcome);
        if (!x.verdict.failed.empty()) why = std::string(kms::check_name(x.verdict.failed.back()));
        ++failures_[why];
    }
    if (x.request) {
        const auto& b = x.request->base;
        listed(cl.workstations, b.workstation());
        listed(cl.cmids, b.cmid.to_string());
        const std::string product = products_.name_or_guid(b.sku_id);
        listed(cl.products, product);
        count(by_product_[product]);
        auto& k = kms_ids_[b.kms_id.to_string()];
        count(k.c);
        k.n_policy = std::max(k.n_policy, b.n_policy);
        k.products.insert(product);
        if (x.request->version.supported()) cmids_.touch(b.kms_id, b.cmid, t);
    }
}

std::uint32_t Summary::current_count(const std::string& kms_id, const KmsId& k) const {
    auto g = Guid::parse(kms_id);
    return g ? genuine_count(cmids_, *g, k.n_policy, latest_) : 0;
}

template <class W>
void Summary::write_json(W& w, const ExchangeTotals& totals,
                         const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const {
    auto counter = [&](const Counter& c) {
        write_counter_fields(w, c.requests, c.ok, c.failed, c.by_status, c.versions);
    };
    w.StartObject();
    key(w, "kind"), text(w, "summary");
    key(w, "as_of"), fields::time(w, latest_);
    key(w, "exchanges"), w.Uint64(totals.exchanges);
    key(w, "ok"), w.Uint64(totals.ok);
    key(w, "failed"), w.Uint64(totals.not_ok);
    key(w, "failures");
    w.StartObject();
    for (const auto& [why, n] : failures_) key(w, why), w.Uint64(n);
    w.EndObject();
    key(w, "dns_srv_messages"), w.Uint64(dns_);
    key(w, "unanswered_connections"), w.Uint64(unanswered_connections_);
    key(w, "unlisted_client_requests"), w.Uint64(unlisted_client_requests_);
    key(w, "kms_ids");
    w.StartArray();
    for (const auto& [id, k] : kms_ids_) {
        w.StartObject();
        counter(k.c);
        key(w, "kms_id"), text(w, id);
        auto g = Guid::parse(id);
        key(w, "kms_product"), text(w, g ? products_.name_or_guid(*g) : id);
        key(w, "current_count"), w.Uint64(current_count(id, k));
        key(w, "n_policy"), w.Uint64(k.n_policy);
        write_set(w, "products", k.products);
        w.EndObject();
    }
    w.EndArray();
    key(w, "clients");
    w.StartArray();
    for (const auto& [ip, c] : clients_) {
        w.StartObject();
        counter(c.c);
        key(w, "client"), text(w, ip);
        write_set(w, "workstations", c.workstations);
        write_set(w, "cmids", c.cmids);
        write_set(w, "products", c.products);
        write_set(w, "servers", c.servers);
        w.EndObject();
    }
    w.EndArray();
    key(w, "servers");
    w.StartArray();
    for (const auto& [ep, sv] : servers_) {
        w.StartObject();
        counter(sv.c);
        key(w, "server"), text(w, ep);
        auto fp = fingerprints.find(ep);
        key(w, "server_impl"),
            text(w, server_impl_name(fp == fingerprints.end() ? ServerImpl::Unknown : fp->second.verdict()));
        key(w, "tells");
        if (fp == fingerprints.end())
            w.StartArray(), w.EndArray();
        else
            fields::strings(w, fp->second.tells());
        write_set(w, "epids", sv.epids);
        write_set(w, "hwids", sv.hwids);
        key(w, "counts");
        w.StartArray();
        for (auto n : sv.counts) w.Uint64(n);
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();
    key(w, "products");
    w.StartArray();
    for (const auto& [name, p] : by_product_) {
        w.StartObject();
        counter(p);
        key(w, "product"), text(w, name);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
}

void Summary::print(Format format, std::FILE* out, const ExchangeTotals& totals,
                    const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const {
    if (format != Format::Json) return print_text(out, totals, fingerprints);
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    write_json(writer, totals, fingerprints);
    buffer.Put('\n');
    std::fwrite(buffer.GetString(), 1, buffer.GetSize(), out);
}

void Summary::print_text(std::FILE* o, const ExchangeTotals& totals,
                         const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const {
    std::fprintf(o, "\n== Summary as of %s ==\n", latest_.to_iso8601().c_str());
    std::fprintf(o, "Exchanges: %llu, ok %llu, failed %llu", ull(totals.exchanges), ull(totals.ok), ull(totals.not_ok));
    for (const auto& [why, n] : failures_) std::fprintf(o, "; %s %llu", why.c_str(), ull(n));
    std::fprintf(o, "\nDNS _vlmcs._tcp messages: %llu; KMS connections never answered: %llu\n", ull(dns_),
                 ull(unanswered_connections_));
    std::fprintf(o,
                 "\n-- Per KMS ID (what a genuine host would report: distinct CMIDs in 30 days, at most 2 x N) --\n");
    for (const auto& [id, k] : kms_ids_) {
        auto g = Guid::parse(id);
        std::fprintf(
            o,
            "%s  %s\n    current count %u (N policy %u), requests %llu (ok %llu, failed %llu), by license status: %s\n",
            id.c_str(), (g ? products_.name_or_guid(*g) : id).c_str(), current_count(id, k), k.n_policy,
            ull(k.c.requests), ull(k.c.ok), ull(k.c.failed), statuses(k.c.by_status).c_str());
    }
    std::fprintf(o, "\n-- Per client --\n");
    for (const auto& [ip, c] : clients_)
        std::fprintf(
            o, "%s  requests %llu (ok %llu, failed %llu)\n    workstations: %s\n    products: %s\n    servers: %s\n",
            ip.c_str(), ull(c.c.requests), ull(c.c.ok), ull(c.c.failed), join(c.workstations).c_str(),
            join(c.products).c_str(), join(c.servers).c_str());
    if (unlisted_client_requests_)
        std::fprintf(o, "(%llu requests from clients beyond the first %zu are counted above, not listed)\n",
                     ull(unlisted_client_requests_), kMaxClients);
    std::fprintf(o, "\n-- Per server --\n");
    for (const auto& [ep, sv] : servers_) {
        auto fp = fingerprints.find(ep);
        const bool known = fp != fingerprints.end();
        std::fprintf(o,
                     "%s  %s  requests %llu (ok %llu, failed %llu)\n    ePIDs: %s\n    HwIds: %s\n    counts: %s\n    "
                     "tells: %s\n",
                     ep.c_str(), server_impl_name(known ? fp->second.verdict() : ServerImpl::Unknown),
                     ull(sv.c.requests), ull(sv.c.ok), ull(sv.c.failed), join(sv.epids).c_str(), join(sv.hwids).c_str(),
                     join(sv.counts).c_str(), known ? join(fp->second.tells()).c_str() : "-");
    }
    std::fprintf(o, "\n-- Per product --\n");
    for (const auto& [name, p] : by_product_)
        std::fprintf(o, "%s  requests %llu (ok %llu, failed %llu), versions %s\n", name.c_str(), ull(p.requests),
                     ull(p.ok), ull(p.failed), join(p.versions).c_str());
}

}  // namespace kmscope::analyzer
