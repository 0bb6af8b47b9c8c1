// The fields of every record, declared once, in output order. `write_fields` walks a record and calls
// a SAX-style writer with RapidJSON's interface (StartObject, Key, String, Uint64, Bool, Null, Double,
// StartArray, ...): RapidJSON's Writer makes JSON lines of it, CsvRow (csv_rows.hpp) the CSV columns.
// The key names and nesting are an interface: scripts depend on them (issue 4 lists them).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

#include "alerts.hpp"
#include "kmscope/epid.hpp"
#include "kmscope/products.hpp"
#include "kmscope/status.hpp"
#include "plain_text.hpp"
#include "records.hpp"

namespace kmscope::analyzer::fields {

template <class W>
void key(W& w, std::string_view k) {
    w.Key(k.data(), static_cast<unsigned>(k.size()));
}

// A writer that can copy plain text (plain_text.hpp) without its escape scan (the JSON lines writer).
template <class W>
concept CopiesPlainText = requires(W& w) {
    w.PlainString("", 0u);
};

// The tool's own text: printable ASCII without quote or backslash (GUIDs, times, HRESULTs, addresses,
// names from the core's tables). A writer that can copy it without the escape scan does so.
template <class W>
void plain(W& w, std::string_view s) {
    if constexpr (CopiesPlainText<W>)
        w.PlainString(s.data(), static_cast<unsigned>(s.size()));
    else
        w.String(s.data(), static_cast<unsigned>(s.size()), true);
}

// Text from a capture may be anything: invalid UTF-8 becomes U+FFFD so that every line is valid JSON.
template <class W>
void text(W& w, std::string_view s) {
    if constexpr (CopiesPlainText<W>) {
        if (is_plain_text(s)) return plain(w, s);
    }
    if (is_valid_utf8(s)) {
        w.String(s.data(), static_cast<unsigned>(s.size()));
    } else {
        const std::string clean = sanitize_utf8(s);
        w.String(clean.data(), static_cast<unsigned>(clean.size()), true);
    }
}

template <class W>
void plain_or_null(W& w, std::string_view s) {
    if (s.empty())
        w.Null();
    else
        plain(w, s);
}

template <class W>
void text_or_null(W& w, std::string_view s) {
    if (s.empty())
        w.Null();
    else
        text(w, s);
}

template <class W>
void guid(W& w, const Guid& g) {
    char buf[Guid::kTextSize];
    g.format(buf);
    plain(w, std::string_view(buf, sizeof buf));
}

template <class W>
void time(W& w, FileTime t) {
    char buf[FileTime::kIso8601MaxSize];
    plain(w, std::string_view(buf, t.format_iso8601(buf)));
}

// A product GUID's name from the table, or the GUID itself when unknown.
template <class W>
void product(W& w, const ProductTable& products, const Guid& g) {
    if (const ProductInfo* p = products.find(g))
        text(w, p->name);
    else
        guid(w, g);
}

template <class W>
void strings(W& w, const std::vector<std::string>& list) {
    w.StartArray();
    for (const auto& s : list) text(w, s);
    w.EndArray();
}

template <class W>
void request(W& w, const ProductTable& products, const kms::BaseRequest& b) {
    w.StartObject();
    key(w, "cmid"), guid(w, b.cmid);
    key(w, "workstation"), text(w, b.workstation());
    key(w, "app_id"), guid(w, b.app_id);
    key(w, "application"), product(w, products, b.app_id);
    key(w, "sku_id"), guid(w, b.sku_id);
    key(w, "product"), product(w, products, b.sku_id);
    key(w, "kms_id"), guid(w, b.kms_id);
    key(w, "kms_product"), product(w, products, b.kms_id);
    key(w, "license_status"), w.Uint64(b.license_status);
    key(w, "license_status_name"), plain(w, license_status_name(b.license_status));
    key(w, "n_policy"), w.Uint64(b.n_policy);
    key(w, "client_time"), time(w, b.client_time);
    key(w, "vm_info"), w.Uint64(b.vm_info);
    key(w, "binding_expiration"), w.Uint64(b.binding_expiration);
    key(w, "previous_cmid"), guid(w, b.previous_cmid);
    w.EndObject();
}

// The ePID's parts as the decoder parsed them (BaseResponse::epid_parts), or null when it has not the
// strict structure.
template <class W>
void epid_parts(W& w, const kms::BaseResponse& b) {
    const auto& p = b.epid_parts;
    if (!p) return w.Null(), void();
    // The raw DDDYYYY digits: the ePID's last dash-separated part, which parse_epid accepted.
    const std::string_view epid = b.epid;
    const std::string_view date = epid.substr(epid.rfind('-') + 1);
    w.StartObject();
    key(w, "platform"), w.Uint64(p->platform);
    key(w, "group"), w.Uint64(p->group);
    key(w, "key_id"), w.Uint64(p->key_id);
    key(w, "channel"), w.Uint64(p->channel);
    key(w, "lcid"), w.Uint64(p->lcid);
    key(w, "build"), w.Uint64(p->build);
    key(w, "date"), plain(w, date);
    w.EndObject();
}

// The response part: the decoded message, or nulls with the HRESULT of an error answer.
template <class W>
void response(W& w, const Exchange& x) {
    w.StartObject();
    if (x.response) {
        const auto& b = x.response->base;
        key(w, "epid"), text(w, b.epid);
        key(w, "epid_parts"), epid_parts(w, b);
        key(w, "hwid");
        if (x.response->hwid) {
            char hwid[HwId::kTextSize];
            x.response->hwid->format(hwid);
            plain(w, std::string_view(hwid, sizeof hwid));
        } else {
            w.Null();
        }
        key(w, "count"), w.Uint64(b.count);
        key(w, "activation_interval"), w.Uint64(b.activation_interval);
        key(w, "renewal_interval"), w.Uint64(b.renewal_interval);
    } else {
        for (const char* k : {"epid", "epid_parts", "hwid", "count", "activation_interval", "renewal_interval"})
            key(w, k), w.Null();
    }
    const std::uint32_t hr = x.hresult.value_or(0);
    key(w, "hresult"), plain(w, kmscope::hex32(hr));
    key(w, "hresult_name");
    if (hr == 0)
        plain(w, "S_OK");
    else
        plain_or_null(w, hresult_name(hr));
    w.EndObject();
}

// The two ends, each as "ip:port" and as separate address and port (the EVE/SIEM form).
template <class W, class R>
void endpoints(W& w, const R& r) {
    key(w, "client"), plain(w, r.client);
    key(w, "client_ip"), plain(w, r.client_ip);
    key(w, "client_port"), w.Uint64(r.client_port);
    key(w, "server"), plain(w, r.server);
    key(w, "server_ip"), plain(w, r.server_ip);
    key(w, "server_port"), w.Uint64(r.server_port);
}

template <class W>
void write_fields(W& w, const ExchangeRecord& r, const ProductTable& products) {
    const Exchange& x = r.x;
    w.StartObject();
    key(w, "kind"), plain(w, "exchange");
    key(w, "ts"), time(w, r.time());
    key(w, "file"), text(w, *r.file);
    key(w, "stream"), w.Uint64(r.stream);
    endpoints(w, r);
    key(w, "call_id"), w.Uint64(x.call_id);
    key(w, "ndr");
    if (x.ndr)
        plain(w, *x.ndr == rpc::Ndr::Ndr64 ? "64" : "32");
    else
        w.Null();
    key(w, "version");
    if (auto v = r.version())
        plain(w, v->to_string());
    else
        w.Null();
    key(w, "request");
    if (x.request)
        request(w, products, x.request->base);
    else
        w.Null();
    key(w, "response");
    if (x.response || x.hresult)
        response(w, x);
    else
        w.Null();
    key(w, "fault");
    if (x.fault_status) {
        w.StartObject();
        key(w, "status"), plain(w, kmscope::hex32(*x.fault_status));
        key(w, "name"), plain_or_null(w, nca_status_name(*x.fault_status));
        w.EndObject();
    } else {
        w.Null();
    }
    key(w, "verdict");
    w.StartObject();
    key(w, "ok"), w.Bool(x.ok());
    key(w, "outcome"), plain(w, outcome_name(x.outcome));
    key(w, "failed_checks");
    w.StartArray();
    for (auto chk : x.verdict.failed) plain(w, kms::check_name(chk));
    w.EndArray();
    w.EndObject();
    key(w, "server_impl"), plain(w, server_impl_name(r.impl));
    key(w, "latency_ms");
    if (auto ms = x.latency_ms())
        w.Double(std::round(*ms * 1000.0) / 1000.0);  // to the microsecond
    else
        w.Null();
    key(w, "diagnostics");
    w.StartArray();
    for (const auto& d : r.stream_diagnostics) text(w, d);
    if (x.request_error) text(w, "request: " + *x.request_error);
    if (x.response_error) text(w, "response: " + *x.response_error);
    for (const auto& d : x.diagnostics) text(w, d.text);
    w.EndArray();
    w.EndObject();
}

template <class W>
void write_fields(W& w, const ConnectionRecord& r, const ProductTable&) {
    w.StartObject();
    key(w, "kind"), text(w, "connection");
    key(w, "ts"), time(w, r.first_seen);
    key(w, "file"), text(w, *r.file);
    key(w, "stream"), w.Uint64(r.stream);
    endpoints(w, r);
    key(w, "state"), text(w, r.state);
    key(w, "kms"), w.Bool(r.kms);
    key(w, "client_bytes"), w.Uint64(r.client_bytes);
    key(w, "server_bytes"), w.Uint64(r.server_bytes);
    key(w, "diagnostics"), strings(w, r.diagnostics);
    w.EndObject();
}

template <class W>
void write_fields(W& w, const DnsRecord& r, const ProductTable&) {
    const KmsDiscovery& m = r.message;
    w.StartObject();
    key(w, "kind"), text(w, "dns");
    key(w, "ts"), time(w, r.time);
    key(w, "file"), text(w, *r.file);
    endpoints(w, r);
    key(w, "id"), w.Uint64(m.id);
    key(w, "response"), w.Bool(m.response);
    key(w, "name"), text(w, m.name);
    key(w, "qtype"), text(w, m.qtype == 33 ? std::string("SRV") : std::to_string(m.qtype));
    key(w, "rcode");
    if (m.response)
        text(w, rcode_name(m.rcode));
    else
        w.Null();
    key(w, "answers");
    w.StartArray();
    for (const auto& a : m.answers) {
        w.StartObject();
        key(w, "target"), text(w, a.target);
        key(w, "port"), w.Uint64(a.port);
        key(w, "priority"), w.Uint64(a.priority);
        key(w, "weight"), w.Uint64(a.weight);
        key(w, "ttl"), w.Uint64(a.ttl);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
}

/// An alert of --format json: what it is, and the record's time and ends (the record itself is the
/// line before it).
template <class W>
void write_alert(W& w, const Alert& a, const Record& record) {
    w.StartObject();
    key(w, "kind"), plain(w, "alert");
    std::visit(
        [&](const auto& r) {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, ExchangeRecord>)
                key(w, "ts"), time(w, r.time());
            else if constexpr (std::is_same_v<T, ConnectionRecord>)
                key(w, "ts"), time(w, r.first_seen);
            else
                key(w, "ts"), time(w, r.time);
            key(w, "file"), text(w, *r.file);
            endpoints(w, r);
        },
        record);
    key(w, "alert"), plain(w, alert_name(a.kind));
    key(w, "signature_id"), w.Uint64(alert_signature_id(a.kind));
    key(w, "severity"), w.Uint64(static_cast<unsigned>(alert_severity(a.kind)));
    key(w, "signature"), text(w, a.signature);
    w.EndObject();
}

/// Writes any record.
template <class W>
void write_record(W& w, const Record& r, const ProductTable& products) {
    std::visit([&](const auto& rec) { write_fields(w, rec, products); }, r);
}

}  // namespace kmscope::analyzer::fields
