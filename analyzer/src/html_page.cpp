// --html: writes the report's aggregates as one HTML page that needs nothing else: styles and script
// inline, charts as SVG (html_svg.cpp), a Content-Security-Policy that forbids every fetch. The counts the
// tests compare with --summary's are in data-* attributes. Every string from a capture goes through
// Page::text (escaped); the script reads only the DOM and embeds no data.
#include "html_page.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kmscope/version.hpp"

namespace kmscope::analyzer {

namespace {

using html::Page;

constexpr std::string_view kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 48px;color:#212121;background:#fafafa}
h1{font-size:22px;margin:16px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:16px 0 6px}.meta{color:#616161}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}.bad b{color:#c62828}.good b{color:#2e7d32}
table{border-collapse:collapse;background:#fff;margin:6px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eceff1;cursor:pointer;user-select:none;white-space:nowrap}
th[data-dir=asc]::after{content:" \25B2"}th[data-dir=desc]::after{content:" \25BC"}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#8d6e63;font-style:italic}.filter{margin:4px 0;padding:3px 6px;width:260px}
.sw{display:inline-block;width:11px;height:11px;margin:0 4px 0 12px;vertical-align:-1px}
.row{display:flex;flex-wrap:wrap;gap:24px}
svg{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#424242}
)";

// Sorting on a header click (numbers by their text, the rest case-insensitively) and filtering rows by a
// substring; the "-shown" span counts the rows left.
constexpr std::string_view kScript = R"(
(function(){
function key(c){var s=c.textContent.trim(),n=Number(s);return s!==''&&!isNaN(n)?n:s.toLowerCase();}
function each(l,f){Array.prototype.forEach.call(l,f);}
document.querySelectorAll('table.sortable').forEach(function(t){
each(t.tHead.rows[0].cells,function(th,i){th.addEventListener('click',function(){
var asc=th.dataset.dir!=='asc';each(t.tHead.rows[0].cells,function(o){delete o.dataset.dir;});
th.dataset.dir=asc?'asc':'desc';var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
rows.sort(function(x,y){var p=key(x.cells[i]),q=key(y.cells[i]);
if(typeof p!==typeof q){p=String(p);q=String(q);}return (p<q?-1:p>q?1:0)*(asc?1:-1);});
rows.forEach(function(r){b.appendChild(r);});});});});
document.querySelectorAll('input.filter').forEach(function(f){
var t=document.getElementById(f.dataset.table),s=document.getElementById(f.dataset.table+'-shown');
function apply(){var q=f.value.toLowerCase(),shown=0;each(t.tBodies[0].rows,function(r){
var ok=r.textContent.toLowerCase().indexOf(q)>=0;r.hidden=!ok;if(ok)shown++;});
s.textContent=shown+' of '+t.tBodies[0].rows.length+' rows';}
f.addEventListener('input',apply);apply();});
})();
)";

template <class C>
std::string join(const C& values, std::string_view sep = ", ") {
    std::string out;
    for (const auto& v : values) {
        if (!out.empty()) out += sep;
        if constexpr (std::is_arithmetic_v<std::decay_t<decltype(v)>>)
            out += std::to_string(v);
        else
            out += v;
    }
    return out;
}

// The `limit` entries of a map with the most requests (map order among equals), and how many were left out.
template <class M>
std::pair<std::vector<const typename M::value_type*>, std::uint64_t> top(const M& m, std::size_t limit) {
    std::vector<const typename M::value_type*> v;
    v.reserve(m.size());
    for (const auto& e : m) v.push_back(&e);
    auto requests = [](const auto* e) {
        if constexpr (requires { e->second.c.requests; })
            return e->second.c.requests;
        else
            return e->second.requests;
    };
    std::stable_sort(v.begin(), v.end(), [&](auto* a, auto* b) { return requests(a) > requests(b); });
    const std::uint64_t left = v.size() > limit ? v.size() - limit : 0;
    if (left) v.resize(limit);
    return {std::move(v), left};
}

// A two-column table of counts (checks, HRESULTs, rcodes, states, ...), largest first.
void count_table(Page& p, std::string_view id, std::string_view label, const CappedCounts& c) {
    std::vector<std::pair<std::string, std::uint64_t>> rows(c.counts.begin(), c.counts.end());
    std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    p.raw("<div>");
    p.table_start(id, {label, "count"});
    for (const auto& [k, v] : rows) p.raw("<tr>").td(k).td_n(v).raw("</tr>\n");
    if (c.others) p.raw("<tr><td><i>others</i></td>").td_n(c.others).raw("</tr>\n");
    p.table_end();
    p.raw("</div>");
}

// requests, ok and failed cells of a Summary counter.
void counter_cells(Page& p, const Summary::Counter& c) {
    p.td_n(c.requests).td_n(c.ok).td_n(c.failed);
}

void counter_attrs(Page& p, const Summary::Counter& c) {
    p.raw(" data-requests=\"")
        .n(c.requests)
        .raw("\" data-ok=\"")
        .n(c.ok)
        .raw("\" data-failed=\"")
        .n(c.failed)
        .raw("\"");
}

void kms_id_section(Page& p, const Summary& s, const ProductTable& products) {
    p.raw("<h2 id=\"kms-ids-title\">Per KMS ID: the count a genuine host would hold</h2>\n");
    p.raw(
        "<p class=\"meta\">Distinct CMIDs seen in the 30 days before the last exchange, at most twice the N policy. "
        "Clients activate only once the count reaches their N policy: 25 for Windows clients, 5 for Windows "
        "Server and Office.</p>\n");
    html::kms_id_chart(p, s, products);
    p.table_start("kms-ids", {"KMS ID", "KMS product", "current count", "N policy", "requests", "ok", "failed",
                              "by license status", "versions", "products"});
    for (const auto& [id, k] : s.kms_ids()) {
        const auto g = Guid::parse(id);
        const std::uint32_t count = s.current_count(id, k);
        p.raw("<tr data-kms-id=\"").text(id).raw("\" data-current-count=\"").n(count).raw("\" data-n-policy=\"");
        p.n(k.n_policy).raw("\"");
        counter_attrs(p, k.c);
        p.raw(">").td(id).td(g ? products.name_or_guid(*g) : id).td_n(count).td_n(k.n_policy);
        counter_cells(p, k.c);
        std::vector<std::string> statuses;
        for (const auto& [name, n] : k.c.by_status) statuses.push_back(name + " " + std::to_string(n));
        p.td(join(statuses)).td(join(k.c.versions)).td(join(k.products)).raw("</tr>\n");
    }
    p.table_end();
}

void product_section(Page& p, const Summary& s) {
    p.raw("<h2>Per product</h2>\n");
    p.table_start("products", {"product", "requests", "ok", "failed", "versions"});
    for (const auto& [name, c] : s.products()) {
        p.raw("<tr data-product=\"").text(name).raw("\"");
        counter_attrs(p, c);
        p.raw(">").td(name);
        counter_cells(p, c);
        p.td(join(c.versions)).raw("</tr>\n");
    }
    p.table_end();
}

void server_section(Page& p, const Summary& s, const std::unordered_map<std::string, ServerFingerprint>& fingerprints) {
    p.raw(
        "<h2>Per server</h2>\n<p class=\"meta\">Fingerprint: which implementation answered, from the tells in "
        "its answers (vlmcsd, py-kms, genuine-like).</p>\n");
    auto [rows, left] = top(s.servers(), HtmlReport::kMaxRows);
    p.table_start("servers",
                  {"server", "fingerprint", "tells", "ePIDs", "HwIds", "counts", "requests", "ok", "failed"});
    for (const auto* e : rows) {
        const auto& [ep, sv] = *e;
        auto fp = fingerprints.find(ep);
        const bool known = fp != fingerprints.end();
        const char* impl = server_impl_name(known ? fp->second.verdict() : ServerImpl::Unknown);
        p.raw("<tr data-server=\"").text(ep).raw("\" data-impl=\"").raw(impl).raw("\"");
        counter_attrs(p, sv.c);
        p.raw(">").td(ep).td(impl).td(known ? join(fp->second.tells(), "; ") : "").td(join(sv.epids));
        p.td(join(sv.hwids)).td(join(sv.counts));
        counter_cells(p, sv.c);
        p.raw("</tr>\n");
    }
    p.table_end();
    p.left_out(left, "servers (fewest requests)", HtmlReport::kMaxRows);
}

void client_section(Page& p, const Summary& s) {
    p.raw("<h2>Per client</h2>\n");
    auto [rows, left] = top(s.clients(), HtmlReport::kMaxRows);
    p.table_start("clients", {"client", "workstations", "CMIDs", "products", "servers", "requests", "ok", "failed"});
    for (const auto* e : rows) {
        const auto& [ip, c] = *e;
        p.raw("<tr data-client=\"").text(ip).raw("\"");
        counter_attrs(p, c.c);
        p.raw(">").td(ip).td(join(c.workstations)).td_n(c.cmids.size()).td(join(c.products)).td(join(c.servers));
        counter_cells(p, c.c);
        p.raw("</tr>\n");
    }
    p.table_end();
    p.left_out(left, "clients (fewest requests)", HtmlReport::kMaxRows);
}

}  // namespace

void HtmlReport::write(std::FILE* out, const ExchangeTotals& totals,
                       const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const {
    Page p;
    const Summary& s = summary_;
    p.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    p.raw(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">\n");
    p.raw("<title>kms-analyze report</title><style>").raw(kStyle).raw("</style></head><body>\n");
    p.raw("<h1>KMS activations</h1><p class=\"meta\">kms-analyze (kmscope) ").raw(kmscope::version).raw(", as of ");
    p.raw(s.as_of().ticks ? s.as_of().to_iso8601() : std::string("-")).raw(" (UTC). Files with records: ");
    p.text(files_.empty() ? std::string("none") : join(files_));
    if (files_left_out_) p.raw(" and ").n(files_left_out_).raw(" more");
    p.raw(".</p>\n");

    // Totals: the numbers --summary --format json prints, in data-* for the tests.
    p.raw("<div class=\"cards\" id=\"totals\" data-exchanges=\"").n(totals.exchanges).raw("\" data-ok=\"").n(totals.ok);
    p.raw("\" data-failed=\"").n(totals.not_ok).raw("\" data-dns=\"").n(s.dns_messages()).raw("\" data-unanswered=\"");
    p.n(s.unanswered_connections()).raw("\">\n");
    auto card = [&](std::string_view label, std::uint64_t v, std::string_view cls = "") {
        p.raw("<div class=\"card ").raw(cls).raw("\"><b>").n(v).raw("</b>").raw(label).raw("</div>\n");
    };
    card("exchanges", totals.exchanges);
    card("ok", totals.ok, "good");
    card("not ok", totals.not_ok, totals.not_ok ? "bad" : "");
    card("KMS IDs", s.kms_ids().size());
    card("clients", s.clients().size());
    card("servers", s.servers().size());
    card("DNS _vlmcs._tcp messages", s.dns_messages());
    card("KMS connections never answered", s.unanswered_connections(), s.unanswered_connections() ? "bad" : "");
    p.raw("</div>\n");

    p.raw("<h2>Activations over time</h2><p id=\"legend\">");
    for (std::size_t k = 0; k < kVerdictClasses; ++k) {
        const char* name = verdict_class_name(VerdictClass(k));
        p.raw("<span data-verdict=\"").raw(name).raw("\" data-count=\"").n(by_class_[k]).raw("\"><span class=\"sw\" ");
        p.raw("style=\"background:").raw(html::kColours[k]).raw("\"></span>").raw(name).raw(" ").n(by_class_[k]);
        p.raw("</span>");
    }
    p.raw("</p>\n");
    html::time_chart(p, series_);

    kms_id_section(p, s, products_);
    product_section(p, s);
    server_section(p, s, fingerprints);
    client_section(p, s);

    p.raw("<h2>Failures</h2>\n<div class=\"row\">");
    count_table(p, "failure-checks", "failed check", checks_);
    count_table(p, "failure-hresults", "HRESULT", hresults_);
    count_table(p, "failure-faults", "RPC fault", faults_);
    p.raw("</div>\n<h3>Exchanges that are not ok</h3>\n");
    p.table_start("failures", {"time (UTC)", "client", "server", "workstation", "product", "verdict", "diagnostics",
                               "file", "stream"});
    for (const auto& r : failures_.rows) {
        p.raw("<tr>").td(r.time).td(r.client).td(r.server).td(r.workstation).td(r.product).td(r.verdict);
        p.td(r.diagnostics).td(r.file).td_n(r.stream).raw("</tr>\n");
    }
    p.table_end();
    p.left_out(failures_.left_out, "failed exchanges", kMaxRows);

    p.raw("<h2>Discovery and unanswered connections (0xC004F074: no KMS host could be contacted)</h2>\n");
    p.raw("<div class=\"cards\" id=\"discovery\" data-queries=\"").n(dns_queries_).raw("\" data-answers=\"");
    p.n(dns_answers_).raw("\" data-failed-answers=\"").n(dns_failed_).raw("\">");
    card("_vlmcs._tcp SRV queries", dns_queries_);
    card("answers", dns_answers_);
    card("answers with an error or no SRV record", dns_failed_, dns_failed_ ? "bad" : "");
    p.raw("</div>\n<div class=\"row\">");
    count_table(p, "dns-names", "queried name", dns_names_);
    count_table(p, "dns-rcodes", "answer rcode", dns_rcodes_);
    count_table(p, "srv-targets", "SRV target", srv_targets_);
    p.raw("</div>\n<h3>DNS messages</h3>\n");
    p.table_start("dns", {"time (UTC)", "client", "DNS server", "message", "name", "SRV answers"});
    for (const auto& r : dns_rows_.rows)
        p.raw("<tr>").td(r.time).td(r.client).td(r.server).td(r.what).td(r.name).td(r.answers).raw("</tr>\n");
    p.table_end();
    p.left_out(dns_rows_.left_out, "DNS messages", kMaxRows);
    p.raw("<div class=\"row\">");
    count_table(p, "connection-states", "connection state", connection_states_);
    count_table(p, "unanswered-servers", "server never answering", unanswered_servers_);
    p.raw("</div>\n<h3>KMS connections without a complete exchange</h3>\n");
    p.table_start("connections", {"time (UTC)", "client", "server", "state", "client bytes", "server bytes",
                                  "diagnostics", "file", "stream"});
    for (const auto& r : connections_.rows) {
        p.raw("<tr>").td(r.time).td(r.client).td(r.server).td(r.state).td_n(r.client_bytes).td_n(r.server_bytes);
        p.td(r.diagnostics).td(r.file).td_n(r.stream).raw("</tr>\n");
    }
    p.table_end();
    p.left_out(connections_.left_out, "connections", kMaxRows);

    p.raw("<h2>Latency</h2>\n<p class=\"meta\" id=\"latency\" data-count=\"").n(latency_.total()).raw("\">");
    p.n(latency_.total()).raw(" exchanges with a request and a response");
    if (latency_.total())
        p.raw(": min ")
            .f(latency_.min(), 2)
            .raw(" ms, mean ")
            .f(latency_.mean(), 2)
            .raw(" ms, max ")
            .f(latency_.max(), 2)
            .raw(" ms");
    p.raw(".</p>\n");
    html::latency_chart(p, latency_);

    p.raw("<script>").raw(kScript).raw("</script>\n</body></html>\n");
    std::fwrite(p.str().data(), 1, p.str().size(), out);
}

}  // namespace kmscope::analyzer
