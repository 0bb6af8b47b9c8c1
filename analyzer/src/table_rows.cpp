// --format table: one aligned line per record, for people at a terminal.
#include <algorithm>
#include <string>

#include "kmscope/outcome.hpp"
#include "printer.hpp"

namespace kmscope::analyzer {

namespace {

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

class TablePrinter final : public Printer {
public:
    TablePrinter(const ProductTable& products, std::FILE* out) : products_(products), out_(out) {}
    void print(const Record& record) override {
        if (!header_done_) {
            header_done_ = true;
            std::fprintf(out_, "%-28s  %-23s  %-23s  %-16s  %-36s  %-10s  %5s  %s\n", "TIME (UTC)", "CLIENT", "SERVER",
                         "WORKSTATION", "PRODUCT", "VERSION", "COUNT", "VERDICT");
        }
        std::visit([&](const auto& r) { line(r); }, record);
    }
    // Under the record that raised it, with its ends, so that a terminal shows what to look at.
    void alert(const Alert& a, const Record& record) override {
        std::visit(
            [&](const auto& r) {
                std::fprintf(out_, "%-28s  %-23s  %-23s  ALERT %s: %s\n", "", r.client.c_str(), r.server.c_str(),
                             alert_name(a.kind), a.signature.c_str());
            },
            record);
    }

private:
    void line(const ExchangeRecord& r) {
        const Exchange& x = r.x;
        auto v = r.version();
        std::string ver = "v";
        ver += v ? v->to_string() : "?";
        if (x.ndr) ver += *x.ndr == rpc::Ndr::Ndr64 ? " NDR64" : " NDR32";
        const std::string ws = x.request ? x.request->base.workstation() : "-";
        const std::string product = x.request ? products_.name_or_guid(x.request->base.sku_id) : "-";
        const std::string count = x.response ? std::to_string(x.response->base.count) : "-";
        std::fprintf(out_, "%-28s  %-23s  %-23s  %s  %s  %-10s  %5s  %s\n", r.time().to_iso8601().c_str(),
                     r.client.c_str(), r.server.c_str(), cell(ws, 16).c_str(), cell(product, 36).c_str(), ver.c_str(),
                     count.c_str(), kmscope::verdict_text(x).c_str());
    }
    void line(const DnsRecord& r) {
        const KmsDiscovery& m = r.message;
        const std::string what = m.response ? "DNS answer " + rcode_name(m.rcode) : std::string("DNS query");
        const std::string qtype = m.qtype == 33 ? std::string("SRV") : std::to_string(m.qtype);
        std::string answers;
        for (const auto& a : m.answers) answers += " -> " + a.target + ":" + std::to_string(a.port);
        std::fprintf(out_, "%-28s  %-23s  %-23s  %s %s %s%s\n", r.time.to_iso8601().c_str(), r.client.c_str(),
                     r.server.c_str(), what.c_str(), qtype.c_str(), m.name.c_str(), answers.c_str());
    }
    void line(const ConnectionRecord& r) {
        std::string text = std::string("CONNECTION ") + r.state;
        for (const auto& d : r.diagnostics) text += ": " + d;
        std::fprintf(out_, "%-28s  %-23s  %-23s  %s\n", r.first_seen.to_iso8601().c_str(), r.client.c_str(),
                     r.server.c_str(), text.c_str());
    }
    const ProductTable& products_;
    std::FILE* out_;
    bool header_done_ = false;
};

}  // namespace

std::unique_ptr<Printer> make_table_printer(const ProductTable& products, std::FILE* out) {
    return std::make_unique<TablePrinter>(products, out);
}

}  // namespace kmscope::analyzer
