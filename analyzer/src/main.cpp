// kms-analyze (first cut): decodes every KMS activation in pcap/pcapng files through the core's
// conversation model and prints one line per exchange.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "kmscope/conversation.hpp"
#include "kmscope/products.hpp"
#include "kmscope/status.hpp"
#include "packet_source.hpp"
#include "tcp_split.hpp"

namespace {

using namespace kmscope;

std::string verdict_text(const Exchange& x) {
    switch (x.outcome) {
        case Outcome::Response: {
            if (!x.response) return "UNDECODABLE";
            if (x.verdict.ok()) return "ok";
            std::string s = "FAIL";
            for (auto c : x.verdict.failed) s += std::string(" ") + std::string(kms::check_name(c));
            return s;
        }
        case Outcome::Hresult: {
            auto name = hresult_name(x.hresult.value_or(0));
            return "HRESULT " + hex32(x.hresult.value_or(0)) + (name.empty() ? "" : " " + std::string(name));
        }
        case Outcome::Fault: {
            auto name = nca_status_name(x.fault_status.value_or(0));
            return "FAULT " + hex32(x.fault_status.value_or(0)) + (name.empty() ? "" : " " + std::string(name));
        }
        case Outcome::NoResponse:
            return "NO RESPONSE";
        case Outcome::Orphan:
            return "ANSWER WITHOUT REQUEST";
    }
    return "?";
}

void print_exchange(const capture::TcpConnection& c, const Exchange& x, const ProductTable& products) {
    FileTime t = x.request_time.value_or(x.response_time.value_or(FileTime{}));
    std::string version = x.request           ? x.request->version.to_string()
                          : x.request_version ? x.request_version->to_string()
                                              : "-";
    std::string product = "-", workstation = "-", status = "-";
    if (x.request) {
        product = products.name_or_guid(x.request->base.sku_id);
        workstation = x.request->base.workstation();
        status = std::string(license_status_name(x.request->base.license_status));
    }
    std::string count = x.response ? std::to_string(x.response->base.count) : "-";
    std::string epid = x.response ? x.response->base.epid : "-";
    std::printf("%s  %s -> %s  v%s NDR%s  %s  [%s, %s]  count %s  ePID %s  %s\n", t.to_iso8601().c_str(),
                c.client.to_string().c_str(), c.server.to_string().c_str(), version.c_str(),
                x.ndr ? rpc::ndr_name(*x.ndr) : "?", product.c_str(), workstation.c_str(), status.c_str(),
                count.c_str(), epid.c_str(), verdict_text(x).c_str());
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"kms-analyze: find, decode and verify KMS activations in capture files"};
    std::vector<std::string> files;
    std::string products_file;
    app.add_option("files", files, "pcap or pcapng files")->required();
    app.add_option("--products", products_file, "extra product CSV (same columns as data/products.csv)");
    CLI11_PARSE(app, argc, argv);

    ProductTable products = ProductTable::with_builtin();
    if (!products_file.empty()) {
        auto merged = products.merge_csv_file(products_file);
        if (!merged) {
            std::cerr << "kms-analyze: " << merged.error().to_string() << "\n";
            return 2;
        }
    }
    int status = 0;
    std::uint64_t exchanges = 0, failed = 0;
    for (const auto& file : files) {
        try {
            capture::PacketSource source(file);
            capture::TcpSplit split([&](const capture::TcpConnection& c, std::vector<Event>&& events) {
                for (const auto& e : events) {
                    if (const auto* x = std::get_if<Exchange>(&e)) {
                        ++exchanges;
                        if (!x->ok()) ++failed;
                        print_exchange(c, *x, products);
                    } else if (const auto* d = std::get_if<Diagnostic>(&e)) {
                        if (c.conversation.is_kms())
                            std::fprintf(stderr, "%s: %s -> %s: %s\n", file.c_str(), c.client.to_string().c_str(),
                                         c.server.to_string().c_str(), d->message.c_str());
                    }
                }
            });
            if (!source.for_each_segment([&](const capture::TcpSegment& s) { split.add(s); })) {
                std::cerr << "kms-analyze: " << source.error() << "\n";
                status = 2;
            }
            split.finish();
        } catch (const std::exception& e) {
            std::cerr << "kms-analyze: " << e.what() << "\n";
            status = 2;
        }
    }
    std::printf("%llu exchanges, %llu ok, %llu not ok\n", static_cast<unsigned long long>(exchanges),
                static_cast<unsigned long long>(exchanges - failed), static_cast<unsigned long long>(failed));
    return status;
}
