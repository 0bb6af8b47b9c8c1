#include "analyzer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>

#include "dns.hpp"
#include "kmscope/epid.hpp"
#include "kmscope/status.hpp"

namespace kmscope::analyzer {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

Json opt_str(const std::string& s) {
    return s.empty() ? Json(nullptr) : Json(s);
}

// The verdict in words, for the table.
std::string verdict_text(const Json& r) {
    const Json& v = r["verdict"];
    std::string outcome = v["outcome"].get<std::string>();
    if (outcome == "response") {
        if (v["ok"].get<bool>()) return "ok";
        std::string s = "FAIL";
        for (const auto& c : v["failed_checks"]) s += " " + c.get<std::string>();
        if (v["failed_checks"].empty()) s += " undecodable";
        return s;
    }
    std::string prefix;
    if (!v["failed_checks"].empty()) {
        prefix = "FAIL";
        for (const auto& c : v["failed_checks"]) prefix += " " + c.get<std::string>();
        prefix += ", ";
    }
    if (outcome == "hresult") {
        const Json& resp = r["response"];
        std::string name = resp["hresult_name"].is_string() ? " " + resp["hresult_name"].get<std::string>() : "";
        return prefix + "HRESULT " + resp["hresult"].get<std::string>() + name;
    }
    if (outcome == "fault") {
        const Json& f = r["fault"];
        std::string name = f["name"].is_string() ? " " + f["name"].get<std::string>() : "";
        return prefix + "FAULT " + f["status"].get<std::string>() + name;
    }
    if (outcome == "no_response") return prefix + "NO RESPONSE";
    return prefix + "ANSWER WITHOUT REQUEST";
}

std::string str_or(const Json& j, const char* dash = "-") {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_null()) return dash;
    return j.dump();
}

std::size_t code_points(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

// The text cut to `width` characters (UTF-8 aware, "~" marks a cut) and padded with spaces to it.
std::string cell(const std::string& s, std::size_t width) {
    std::string out;
    if (code_points(s) <= width) {
        out = s;
    } else {
        std::size_t kept = 0, i = 0;
        for (; i < s.size(); ++i) {
            if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && kept++ == width - 1) break;
        }
        out = s.substr(0, i) + "~";
    }
    out.append(width - std::min(width, code_points(out)), ' ');
    return out;
}

// The columns of --format csv, as paths into the record.
const std::vector<std::vector<std::string>>& csv_columns() {
    static const std::vector<std::vector<std::string>> cols = [] {
        std::vector<std::vector<std::string>> c;
        for (const char* k : {"kind", "ts", "file", "stream", "client", "server", "call_id", "ndr", "version"})
            c.push_back({k});
        for (const char* k : {"cmid", "workstation", "app_id", "application", "sku_id", "product", "kms_id",
                              "kms_product", "license_status", "license_status_name", "n_policy", "client_time",
                              "vm_info", "binding_expiration", "previous_cmid"})
            c.push_back({"request", k});
        for (const char* k : {"epid"}) c.push_back({"response", k});
        for (const char* k : {"platform", "group", "key_id", "channel", "lcid", "build", "date"})
            c.push_back({"response", "epid_parts", k});
        for (const char* k : {"hwid", "count", "activation_interval", "renewal_interval", "hresult", "hresult_name"})
            c.push_back({"response", k});
        c.push_back({"fault", "status"});
        c.push_back({"fault", "name"});
        for (const char* k : {"ok", "outcome", "failed_checks"}) c.push_back({"verdict", k});
        for (const char* k : {"server_impl", "latency_ms", "state", "diagnostics"}) c.push_back({k});
        return c;
    }();
    return cols;
}

std::string csv_cell(const Json& j) {
    std::string s;
    if (j.is_null()) return "";
    if (j.is_string()) s = j.get<std::string>();
    else if (j.is_array()) {
        for (const auto& e : j) {
            if (!s.empty()) s += "; ";
            s += e.is_string() ? e.get<std::string>() : e.dump();
        }
    } else s = j.dump();
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

const Json* at_path(const Json& r, const std::vector<std::string>& path) {
    const Json* j = &r;
    for (const auto& p : path) {
        if (!j->is_object()) return nullptr;
        auto it = j->find(p);
        if (it == j->end()) return nullptr;
        j = &*it;
    }
    return j;
}

std::string connection_state(const capture::TcpConnection& c) {
    if (c.syn_seen && !c.synack_seen && c.to_client.bytes == 0) return c.reset ? "refused" : "no_answer";
    if (c.reset) return "reset";
    switch (c.end_reason) {
        case EndReason::Closed:
            return "closed";
        case EndReason::Reset:
            return "reset";
        case EndReason::Timeout:
            return "idle";
        case EndReason::EndOfCapture:
            return "open";
    }
    return "open";
}

std::string state_sentence(const std::string& state) {
    if (state == "refused") return "the SYN was answered with a reset (nothing listening, or a firewall)";
    if (state == "no_answer") return "the SYN was never answered (host down, wrong address, or filtered)";
    if (state == "reset") return "the connection was reset before any KMS answer";
    if (state == "closed") return "the connection was closed without any KMS answer";
    if (state == "idle") return "the connection went idle without any KMS answer";
    return "the capture ended before any KMS answer";
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
        if (!v.empty()) f.values.push_back(v);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (f.key == "verdict")
        for (auto& v : f.values) {
            v = lower(v);
            static const std::set<std::string> ok{"ok", "fail", "response", "hresult", "fault", "no_response", "orphan"};
            if (!ok.count(v)) {
                error = "unknown verdict '" + v + "' (ok, fail, hresult, fault, no_response, orphan)";
                return std::nullopt;
            }
        }
    return f;
}

// Per-connection state kept by the analyzer while the connection is open.
struct Analyzer::ConnState {
    std::vector<std::string> diagnostics;  // stream-level, not yet attached to an exchange
    std::string client, server, client_address;
    ServerFingerprint* fp = nullptr;  // of this connection's server
    std::uint64_t exchanges = 0;
    bool answered = false;  // a KMS response, HRESULT or fault came back
};

// What --summary reports.
struct Analyzer::Summary {
    struct Counter {
        std::uint64_t requests = 0, ok = 0, failed = 0;
        std::map<std::string, std::uint64_t> by_status;
        std::set<std::string> versions;
    };
    struct KmsId {
        Counter c;
        std::uint32_t n_policy = 0;
        std::set<std::string> products;
    };
    struct Client {
        Counter c;
        std::set<std::string> workstations, cmids, products, servers;
    };
    struct Server {
        Counter c;
        std::set<std::string> epids, hwids;
        std::set<std::uint32_t> counts;
    };
    MemoryCmidStore cmids;
    FileTime latest;
    std::map<std::string, KmsId> kms_ids;
    std::map<std::string, Client> clients;
    std::map<std::string, Server> servers;
    std::map<std::string, Counter> products;
    std::uint64_t dns = 0, unanswered_connections = 0;
    std::map<std::string, std::uint64_t> failures;  // outcome or failed check -> exchanges
};

Analyzer::Analyzer(Options options, const ProductTable& products, std::FILE* out)
    : opt_(std::move(options)), products_(products), out_(out) {
    if (opt_.summary) summary_ = std::make_unique<Summary>();
    thread_ = std::thread([this] { worker(); });
}

Analyzer::~Analyzer() {
    drain();
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void Analyzer::push(Item&& item) {
    batch_.push_back(std::move(item));
    if (batch_.size() >= 256) submit();
}

void Analyzer::submit() {
    if (batch_.empty()) return;
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return queue_.size() < 8; });  // bounded (about 2000 exchanges in flight)
    queue_.push_back(std::move(batch_));
    batch_ = {};
    lock.unlock();
    wake_.notify_one();
}

void Analyzer::drain() {
    submit();
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

void Analyzer::worker() {
    std::unique_lock lock(mu_);
    for (;;) {
        wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping
        std::vector<Item> items = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        lock.unlock();
        idle_.notify_all();
        for (auto& item : items) consume(item);
        lock.lock();
        busy_ = false;
        idle_.notify_all();
    }
}

void Analyzer::consume(Item& item) {
    if (item.exchange) return consume_exchange(*item.exchange);
    if (!passes(item.record)) return;
    emit(item.record);
    if (summary_ && item.counts_dns) ++summary_->dns;
    if (summary_ && item.counts_unanswered) ++summary_->unanswered_connections;
}

bool Analyzer::passes(const Json& r) const {
    const std::string kind = r["kind"].get<std::string>();
    for (const auto& f : opt_.filters) {
        bool any = false;
        for (const auto& v : f.values) {
            if (f.key == "client" || f.key == "server") {
                const Json& ep = r[f.key];
                if (!ep.is_string()) continue;
                std::string s = ep.get<std::string>();
                std::string addr = s.substr(0, s.rfind(':'));
                if (!addr.empty() && addr.front() == '[') addr = addr.substr(1, addr.size() - 2);
                any = lower(v) == lower(s) || lower(v) == lower(addr) || lower(v) == "[" + lower(addr) + "]";
            } else if (kind != "exchange") {
                any = false;
            } else if (f.key == "product") {
                const Json& q = r["request"];
                if (!q.is_object()) continue;
                std::string needle = lower(v);
                for (const char* k : {"product", "kms_product", "application", "sku_id", "kms_id", "app_id"})
                    if (q[k].is_string() && lower(q[k].get<std::string>()).find(needle) != std::string::npos)
                        any = true;
            } else if (f.key == "version") {
                if (!r["version"].is_string()) continue;
                std::string ver = r["version"].get<std::string>();
                any = ver == v || ver.substr(0, ver.find('.')) == v;
            } else if (f.key == "verdict") {
                const Json& vd = r["verdict"];
                if (v == "ok") any = vd["ok"].get<bool>();
                else if (v == "fail") any = !vd["ok"].get<bool>();
                else any = vd["outcome"].get<std::string>() == v;
            }
            if (any) break;
        }
        if (!any) return false;
    }
    return true;
}

void Analyzer::emit(const Json& r) {
    switch (opt_.format) {
        case Format::Json: {
            std::string line = r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            line += '\n';
            std::fwrite(line.data(), 1, line.size(), out_);
            return;
        }
        case Format::Csv: {
            std::string line;
            if (!header_done_) {
                header_done_ = true;
                for (const auto& col : csv_columns()) {
                    if (!line.empty()) line += ',';
                    std::string name;
                    for (const auto& p : col) name += (name.empty() ? "" : ".") + p;
                    line += name;
                }
                line += '\n';
            }
            bool first = true;
            for (const auto& col : csv_columns()) {
                if (!first) line += ',';
                first = false;
                const Json* j = at_path(r, col);
                if (j) line += csv_cell(*j);
            }
            line += '\n';
            std::fwrite(line.data(), 1, line.size(), out_);
            return;
        }
        case Format::Table: {
            if (!header_done_) {
                header_done_ = true;
                std::fprintf(out_, "%-28s  %-23s  %-23s  %-16s  %-36s  %-10s  %5s  %s\n", "TIME (UTC)", "CLIENT",
                             "SERVER", "WORKSTATION", "PRODUCT", "VERSION", "COUNT", "VERDICT");
            }
            const std::string kind = r["kind"].get<std::string>();
            std::string ts = str_or(r["ts"]);
            if (kind == "exchange") {
                const Json& q = r["request"];
                const Json& s = r["response"];
                std::string ver = r["version"].is_string() ? "v" + r["version"].get<std::string>() : "v?";
                if (r["ndr"].is_string()) ver += " NDR" + r["ndr"].get<std::string>();
                std::string ws = q.is_object() ? str_or(q["workstation"]) : "-";
                std::string product = q.is_object() ? str_or(q["product"]) : "-";
                std::string count = s.is_object() && s["count"].is_number() ? s["count"].dump() : "-";
                std::fprintf(out_, "%-28s  %-23s  %-23s  %s  %s  %-10s  %5s  %s\n", ts.c_str(),
                             str_or(r["client"]).c_str(), str_or(r["server"]).c_str(), cell(ws, 16).c_str(),
                             cell(product, 36).c_str(), ver.c_str(), count.c_str(), verdict_text(r).c_str());
            } else if (kind == "dns") {
                std::string what = r["response"].get<bool>() ? "DNS answer " + r["rcode"].get<std::string>()
                                                             : std::string("DNS query");
                std::string answers;
                for (const auto& a : r["answers"])
                    answers += " -> " + a["target"].get<std::string>() + ":" + a["port"].dump();
                std::fprintf(out_, "%-28s  %-23s  %-23s  %s %s %s%s\n", ts.c_str(), str_or(r["client"]).c_str(),
                             str_or(r["server"]).c_str(), what.c_str(), r["qtype"].get<std::string>().c_str(),
                             r["name"].get<std::string>().c_str(), answers.c_str());
            } else {
                std::string text = "CONNECTION " + r["state"].get<std::string>();
                for (const auto& d : r["diagnostics"]) text += ": " + d.get<std::string>();
                std::fprintf(out_, "%-28s  %-23s  %-23s  %s\n", ts.c_str(), str_or(r["client"]).c_str(),
                             str_or(r["server"]).c_str(), text.c_str());
            }
            return;
        }
    }
}

Json Analyzer::exchange_record(const ExchangeItem& item) {
    const Exchange& x = item.x;
    Json r;
    r["kind"] = "exchange";
    FileTime t = x.request_time.value_or(x.response_time.value_or(item.first_seen));
    r["ts"] = t.to_iso8601();
    r["file"] = *item.file;
    r["stream"] = item.stream;
    r["client"] = item.client;
    r["server"] = item.server;
    r["call_id"] = x.call_id;
    r["ndr"] = x.ndr ? Json(*x.ndr == rpc::Ndr::Ndr64 ? "64" : "32") : Json(nullptr);
    std::optional<kms::Version> v = x.request ? std::optional(x.request->version) : x.request_version;
    if (!v && x.response) v = x.response->version;
    r["version"] = v ? Json(v->to_string()) : Json(nullptr);
    if (x.request) {
        const auto& b = x.request->base;
        Json q;
        q["cmid"] = b.cmid.to_string();
        q["workstation"] = b.workstation();
        q["app_id"] = b.app_id.to_string();
        q["application"] = products_.name_or_guid(b.app_id);
        q["sku_id"] = b.sku_id.to_string();
        q["product"] = products_.name_or_guid(b.sku_id);
        q["kms_id"] = b.kms_id.to_string();
        q["kms_product"] = products_.name_or_guid(b.kms_id);
        q["license_status"] = b.license_status;
        q["license_status_name"] = std::string(license_status_name(b.license_status));
        q["n_policy"] = b.n_policy;
        q["client_time"] = b.client_time.to_iso8601();
        q["vm_info"] = b.vm_info;
        q["binding_expiration"] = b.binding_expiration;
        q["previous_cmid"] = b.previous_cmid.to_string();
        r["request"] = std::move(q);
    } else {
        r["request"] = nullptr;
    }
    if (x.response || x.hresult) {
        Json s;
        if (x.response) {
            const auto& b = x.response->base;
            s["epid"] = b.epid;
            if (auto p = parse_epid(b.epid)) {
                char date[16];
                std::snprintf(date, sizeof date, "%03u%04u", p->day_of_year, p->year);
                s["epid_parts"] = Json{{"platform", p->platform}, {"group", p->group}, {"key_id", p->key_id},
                                       {"channel", p->channel},   {"lcid", p->lcid},   {"build", p->build},
                                       {"date", date}};
            } else {
                s["epid_parts"] = nullptr;
            }
            s["hwid"] = x.response->hwid ? Json(x.response->hwid->to_string()) : Json(nullptr);
            s["count"] = b.count;
            s["activation_interval"] = b.activation_interval;
            s["renewal_interval"] = b.renewal_interval;
        } else {
            for (const char* k : {"epid", "epid_parts", "hwid", "count", "activation_interval", "renewal_interval"})
                s[k] = nullptr;
        }
        std::uint32_t hr = x.hresult.value_or(0);
        s["hresult"] = hex32(hr);
        auto name = hresult_name(hr);
        s["hresult_name"] = hr == 0 ? Json("S_OK") : opt_str(std::string(name));
        r["response"] = std::move(s);
    } else {
        r["response"] = nullptr;
    }
    if (x.fault_status) {
        r["fault"] = Json{{"status", hex32(*x.fault_status)}, {"name", opt_str(std::string(nca_status_name(*x.fault_status)))}};
    } else {
        r["fault"] = nullptr;
    }
    Json checks = Json::array();
    for (auto chk : x.verdict.failed) checks.push_back(std::string(kms::check_name(chk)));
    r["verdict"] = Json{{"ok", x.ok()}, {"outcome", outcome_name(x.outcome)}, {"failed_checks", std::move(checks)}};
    r["server_impl"] = server_impl_name(item.impl);
    if (auto ms = x.latency_ms()) r["latency_ms"] = std::round(*ms * 1000.0) / 1000.0;
    else r["latency_ms"] = nullptr;
    Json diags = Json::array();
    for (const auto& d : item.extra) diags.push_back(d);
    if (x.request_error) diags.push_back("request: " + *x.request_error);
    if (x.response_error) diags.push_back("response: " + *x.response_error);
    for (const auto& d : x.diagnostics) diags.push_back(d);
    r["diagnostics"] = std::move(diags);
    return r;
}

void Analyzer::on_events(const std::string& file, const capture::TcpConnection& c, std::vector<Event>&& events) {
    if (!c.conversation.is_kms()) return;  // other DCE/RPC, or not DCE/RPC at all
    ConnState& st = conns_[c.index];
    if (!st.fp) st.fp = &fingerprints_[c.server.to_string()];
    ServerFingerprint& fp = *st.fp;
    seen_kms_ports_.insert(c.server.port);
    for (auto& e : events) {
        fp.observe(e);
        if (const auto* d = std::get_if<Diagnostic>(&e)) {
            st.diagnostics.push_back(std::string(direction_name(d->direction)) + " at byte " +
                                     std::to_string(d->stream_offset) + ": " + d->message);
            continue;
        }
        auto* x = std::get_if<Exchange>(&e);
        if (!x) continue;
        ++st.exchanges;
        if (x->outcome != Outcome::NoResponse) st.answered = true;
        Item item;
        item.exchange.emplace();
        ExchangeItem& xi = *item.exchange;
        xi.extra.swap(st.diagnostics);
        xi.file = &file;
        xi.stream = c.index - 1;
        if (st.client.empty()) {
            st.client = c.client.to_string();
            st.server = c.server.to_string();
            st.client_address = c.client.address_string();
        }
        xi.client = st.client;
        xi.server = st.server;
        xi.client_address = st.client_address;
        xi.first_seen = c.first_seen;
        xi.last_seen = c.last_seen;
        xi.impl = fp.verdict();
        xi.x = std::move(*x);
        push(std::move(item));
    }
}

void Analyzer::consume_exchange(ExchangeItem& item) {
    const Exchange* x = &item.x;
    Json r = exchange_record(item);
    if (!passes(r)) return;
    ++totals_.exchanges;
    const bool ok = r["verdict"]["ok"].get<bool>();
    ++(ok ? totals_.ok : totals_.not_ok);
    emit(r);
    if (summary_) {
        Summary& s = *summary_;
        const std::string version = str_or(r["version"]);
        auto count = [&](Summary::Counter& k) {
            ++k.requests;
            ++(ok ? k.ok : k.failed);
            if (x->request) ++k.by_status[r["request"]["license_status_name"].get<std::string>()];
            k.versions.insert(version);
        };
        FileTime t = x->request_time.value_or(x->response_time.value_or(item.last_seen));
        s.latest = std::max(s.latest, t);
        auto& cl = s.clients[item.client_address];
        count(cl.c);
        cl.servers.insert(item.server);
        auto& sv = s.servers[item.server];
        count(sv.c);
        if (x->response) {
            sv.epids.insert(x->response->base.epid);
            if (x->response->hwid) sv.hwids.insert(x->response->hwid->to_string());
            sv.counts.insert(x->response->base.count);
        }
        if (!ok) {
            std::string why = outcome_name(x->outcome);
            for (const auto& chk : r["verdict"]["failed_checks"]) why = chk.get<std::string>();
            ++s.failures[why];
        }
        if (x->request) {
            const auto& b = x->request->base;
            cl.workstations.insert(b.workstation());
            cl.cmids.insert(b.cmid.to_string());
            const std::string product = products_.name_or_guid(b.sku_id);
            cl.products.insert(product);
            count(s.products[product]);
            auto& k = s.kms_ids[b.kms_id.to_string()];
            count(k.c);
            k.n_policy = std::max(k.n_policy, b.n_policy);
            k.products.insert(product);
            if (x->request->version.supported()) s.cmids.touch(b.kms_id, b.cmid, t);
        }
    }
}

void Analyzer::on_end(const std::string& file, const capture::TcpConnection& c) {
    auto it = conns_.find(c.index);
    const bool kms = c.conversation.is_kms();
    const bool candidate = !kms && !c.ignored && c.syn_seen && c.to_client.bytes == 0;
    if (!kms && !candidate) {
        if (it != conns_.end()) conns_.erase(it);
        return;
    }
    Json r;
    r["kind"] = "connection";
    r["ts"] = c.first_seen.to_iso8601();
    r["file"] = file;
    r["stream"] = c.index - 1;
    r["client"] = c.client.to_string();
    r["server"] = c.server.to_string();
    const std::string state = connection_state(c);
    r["state"] = state;
    r["kms"] = kms;
    r["client_bytes"] = c.to_server.bytes;
    r["server_bytes"] = c.to_client.bytes;
    Json diags = Json::array();
    if (kms) {
        ConnState st = it == conns_.end() ? ConnState{} : std::move(it->second);
        if (it != conns_.end()) conns_.erase(it);
        if (st.diagnostics.empty() && (st.answered || st.exchanges > 0)) return;  // fully told by its exchanges
        if (!st.answered && st.exchanges == 0) diags.push_back("no KMS request was answered: " + state_sentence(state));
        for (auto& d : st.diagnostics) diags.push_back(std::move(d));
        r["diagnostics"] = std::move(diags);
        push(Item{std::nullopt, std::move(r), false, !st.answered});
        return;
    }
    diags.push_back(state_sentence(state));
    r["diagnostics"] = std::move(diags);
    if (opt_.kms_ports.count(c.server.port) || seen_kms_ports_.count(c.server.port)) {
        push(Item{std::nullopt, std::move(r), false, true});
    } else if (candidates_.size() < 4096) {
        candidates_.emplace_back(c.server.port, std::move(r));  // decided at the end of the file
    }
}

void Analyzer::on_udp(const std::string& file, const capture::UdpDatagram& d) {
    if (d.src.port != 53 && d.dst.port != 53 && d.src.port != 5353 && d.dst.port != 5353) return;
    auto m = parse_kms_discovery(d.payload);
    if (!m) return;
    Json r;
    r["kind"] = "dns";
    r["ts"] = d.time.to_iso8601();
    r["file"] = file;
    r["client"] = (m->response ? d.dst : d.src).to_string();
    r["server"] = (m->response ? d.src : d.dst).to_string();
    r["id"] = m->id;
    r["response"] = m->response;
    r["name"] = m->name;
    r["qtype"] = m->qtype == 33 ? std::string("SRV") : std::to_string(m->qtype);
    r["rcode"] = m->response ? Json(rcode_name(m->rcode)) : Json(nullptr);
    Json answers = Json::array();
    for (const auto& a : m->answers)
        answers.push_back(Json{{"target", a.target}, {"port", a.port}, {"priority", a.priority},
                               {"weight", a.weight}, {"ttl", a.ttl}});
    r["answers"] = std::move(answers);
    push(Item{std::nullopt, std::move(r), true, false});
}

bool Analyzer::run(const std::string& path) {
    ++totals_.files;
    const std::string file = path == "-" ? std::string("-") : path;
    bool ok = true;
    try {
        capture::PacketSource source(path);
        capture::TcpSplit split(
            [&](const capture::TcpConnection& c, std::vector<Event>&& events) {
                on_events(file, c, std::move(events));
            },
            opt_.limits);
        split.on_end([&](const capture::TcpConnection& c) { on_end(file, c); });
        source.set_udp_handler([&](const capture::UdpDatagram& d) { on_udp(file, d); });
        std::uint64_t n = 0;
        const bool show = opt_.progress;
        ok = source.for_each_segment([&](const capture::TcpSegment& s) {
            split.add(s);
            if (show && (++n & 0xFFFF) == 0) {
                double p = source.progress();
                if (p >= 0) std::fprintf(stderr, "\r%s: %5.1f%%", file.c_str(), p * 100);
                else std::fprintf(stderr, "\r%s: %llu packets", file.c_str(), static_cast<unsigned long long>(n));
            }
        });
        if (show && n >= 0x10000) std::fprintf(stderr, "\r\033[K");
        if (!ok) std::fprintf(stderr, "kms-analyze: %s\n", source.error().c_str());
        split.finish();
        for (auto& [port, r] : candidates_)
            if (seen_kms_ports_.count(port)) push(Item{std::nullopt, std::move(r), false, true});
        candidates_.clear();
        conns_.clear();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kms-analyze: %s\n", e.what());
        ok = false;
    }
    drain();  // this file's records are out before the next file (and before its errors)
    std::fflush(out_);
    if (!ok) ++totals_.bad_files;
    return ok;
}

void Analyzer::finish() {
    drain();
    if (opt_.format == Format::Table)
        std::fprintf(out_, "%llu exchanges, %llu ok, %llu not ok\n", static_cast<unsigned long long>(totals_.exchanges),
                     static_cast<unsigned long long>(totals_.ok), static_cast<unsigned long long>(totals_.not_ok));
    if (!summary_) return;
    Summary& s = *summary_;
    auto counter_json = [](const Summary::Counter& k) {
        return Json{{"requests", k.requests},
                    {"ok", k.ok},
                    {"failed", k.failed},
                    {"by_license_status", k.by_status},
                    {"versions", k.versions}};
    };
    Json kms = Json::array();
    for (const auto& [id, k] : s.kms_ids) {
        auto g = Guid::parse(id);
        std::uint32_t current = g ? genuine_count(s.cmids, *g, k.n_policy, s.latest) : 0;
        Json j = counter_json(k.c);
        j["kms_id"] = id;
        j["kms_product"] = g ? products_.name_or_guid(*g) : id;
        j["current_count"] = current;
        j["n_policy"] = k.n_policy;
        j["products"] = k.products;
        kms.push_back(std::move(j));
    }
    Json clients = Json::array();
    for (const auto& [ip, c] : s.clients) {
        Json j = counter_json(c.c);
        j["client"] = ip;
        j["workstations"] = c.workstations;
        j["cmids"] = c.cmids;
        j["products"] = c.products;
        j["servers"] = c.servers;
        clients.push_back(std::move(j));
    }
    Json servers = Json::array();
    for (const auto& [ep, sv] : s.servers) {
        Json j = counter_json(sv.c);
        j["server"] = ep;
        auto fp = fingerprints_.find(ep);
        j["server_impl"] = server_impl_name(fp == fingerprints_.end() ? ServerImpl::Unknown : fp->second.verdict());
        j["tells"] = fp == fingerprints_.end() ? Json::array() : Json(fp->second.tells());
        j["epids"] = sv.epids;
        j["hwids"] = sv.hwids;
        j["counts"] = sv.counts;
        servers.push_back(std::move(j));
    }
    Json products = Json::array();
    for (const auto& [name, p] : s.products) {
        Json j = counter_json(p);
        j["product"] = name;
        products.push_back(std::move(j));
    }
    Json sum{{"kind", "summary"},
             {"as_of", s.latest.to_iso8601()},
             {"exchanges", totals_.exchanges},
             {"ok", totals_.ok},
             {"failed", totals_.not_ok},
             {"failures", s.failures},
             {"dns_srv_messages", s.dns},
             {"unanswered_connections", s.unanswered_connections},
             {"kms_ids", std::move(kms)},
             {"clients", std::move(clients)},
             {"servers", std::move(servers)},
             {"products", std::move(products)}};
    if (opt_.format == Format::Json) {
        std::string line = sum.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        std::fwrite(line.data(), 1, line.size(), out_);
        return;
    }
    auto join = [](const Json& arr) {
        std::string out;
        for (const auto& e : arr) out += (out.empty() ? "" : ", ") + (e.is_string() ? e.get<std::string>() : e.dump());
        return out.empty() ? std::string("-") : out;
    };
    auto statuses = [](const Json& m) {
        std::string out;
        for (const auto& [k, v] : m.items()) out += (out.empty() ? "" : ", ") + k + " " + v.dump();
        return out.empty() ? std::string("-") : out;
    };
    std::FILE* o = out_;
    std::fprintf(o, "\n== Summary as of %s ==\n", s.latest.to_iso8601().c_str());
    std::fprintf(o, "Exchanges: %llu, ok %llu, failed %llu", static_cast<unsigned long long>(totals_.exchanges),
                 static_cast<unsigned long long>(totals_.ok), static_cast<unsigned long long>(totals_.not_ok));
    for (const auto& [why, n] : s.failures) std::fprintf(o, "; %s %llu", why.c_str(), static_cast<unsigned long long>(n));
    std::fprintf(o, "\nDNS _vlmcs._tcp messages: %llu; KMS connections never answered: %llu\n",
                 static_cast<unsigned long long>(s.dns), static_cast<unsigned long long>(s.unanswered_connections));
    std::fprintf(o, "\n-- Per KMS ID (what a genuine host would report: distinct CMIDs in 30 days, at most 2 x N) --\n");
    for (const auto& j : sum["kms_ids"])
        std::fprintf(o, "%s  %s\n    current count %s (N policy %s), requests %s (ok %s, failed %s), by license status: %s\n",
                     j["kms_id"].get<std::string>().c_str(), j["kms_product"].get<std::string>().c_str(),
                     j["current_count"].dump().c_str(), j["n_policy"].dump().c_str(), j["requests"].dump().c_str(),
                     j["ok"].dump().c_str(), j["failed"].dump().c_str(), statuses(j["by_license_status"]).c_str());
    std::fprintf(o, "\n-- Per client --\n");
    for (const auto& j : sum["clients"])
        std::fprintf(o, "%s  requests %s (ok %s, failed %s)\n    workstations: %s\n    products: %s\n    servers: %s\n",
                     j["client"].get<std::string>().c_str(), j["requests"].dump().c_str(), j["ok"].dump().c_str(),
                     j["failed"].dump().c_str(), join(j["workstations"]).c_str(), join(j["products"]).c_str(),
                     join(j["servers"]).c_str());
    std::fprintf(o, "\n-- Per server --\n");
    for (const auto& j : sum["servers"])
        std::fprintf(o, "%s  %s  requests %s (ok %s, failed %s)\n    ePIDs: %s\n    HwIds: %s\n    counts: %s\n    tells: %s\n",
                     j["server"].get<std::string>().c_str(), j["server_impl"].get<std::string>().c_str(),
                     j["requests"].dump().c_str(), j["ok"].dump().c_str(), j["failed"].dump().c_str(),
                     join(j["epids"]).c_str(), join(j["hwids"]).c_str(), join(j["counts"]).c_str(),
                     join(j["tells"]).c_str());
    std::fprintf(o, "\n-- Per product --\n");
    for (const auto& j : sum["products"])
        std::fprintf(o, "%s  requests %s (ok %s, failed %s), versions %s\n", j["product"].get<std::string>().c_str(),
                     j["requests"].dump().c_str(), j["ok"].dump().c_str(), j["failed"].dump().c_str(),
                     join(j["versions"]).c_str());
}

}  // namespace kmscope::analyzer
