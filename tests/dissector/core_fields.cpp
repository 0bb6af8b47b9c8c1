// kms-core-fields: the kmscope core's view of a capture, printed in the columns of the dissector's
// tshark field test, so that tests/dissector/test_crosscheck.sh can compare the two. Reads the capture
// with the analyzer's capture reader and the core's conversation model (the path kms-analyze uses),
// which is independent of Wireshark's TCP reassembly, DCE/RPC binding and call matching.
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "kmscope/conversation.hpp"
#include "kmscope/fingerprint.hpp"
#include "kmscope/products.hpp"
#include "packet_source.hpp"
#include "tcp_split.hpp"

namespace {

using namespace kmscope;

std::string hex(ByteView b) {
    return to_hex(b);
}

void print_exchange(const Exchange& x, const ProductTable& products) {
    // Request line: version, cmid, sku, kms, app, workstation, license status, n policy, vm, binding, names.
    if (x.request) {
        const auto& b = x.request->base;
        std::printf("request\t%u\t%u\t%s\t%s\t%s\t%s\t%s\t%u\t%u\t%u\t%u\t%s\t%s\t%s\t%s\n", x.request->version.major,
                    x.request->version.minor, b.cmid.to_string().c_str(), b.sku_id.to_string().c_str(),
                    b.kms_id.to_string().c_str(), b.app_id.to_string().c_str(), b.workstation().c_str(),
                    b.license_status, b.n_policy, b.vm_info, b.binding_expiration,
                    products.name_or_guid(b.sku_id).c_str(), products.name_or_guid(b.kms_id).c_str(),
                    products.name_or_guid(b.app_id).c_str(), b.previous_cmid.to_string().c_str());
    }
    if (x.response) {
        const auto& r = *x.response;
        std::string failed;
        for (auto c : x.verdict.failed) {
            // append, not `literal + std::string`: GCC 12 -O3 reports a false -Wrestrict through operator+.
            if (!failed.empty()) failed += ',';
            failed += kms::check_name(c);
        }
        std::printf("response\t%u\t%s\t%u\t%u\t%u\t%s\t%s\t%s\t%s\n", r.version.major, r.base.epid.c_str(),
                    r.base.count, r.base.activation_interval, r.base.renewal_interval,
                    r.hwid ? hex(r.hwid->bytes).c_str() : "", r.base.cmid.to_string().c_str(),
                    x.verdict.ok() ? "1" : "0", failed.c_str());
    } else if (x.outcome == Outcome::Hresult) {
        std::printf("hresult\t0x%08x\n", x.hresult.value_or(0));
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: kms-core-fields CAPTURE\n");
        return 2;
    }
    try {
        const ProductTable& products = ProductTable::builtin();
        std::map<std::string, ServerFingerprint> servers;  // like the dissector: one per server endpoint
        capture::PacketSource source(argv[1]);
        capture::TcpSplit split([&](const capture::TcpConnection& c, std::vector<Event>&& events) {
            if (!c.conversation.is_kms()) return;
            ServerFingerprint& fp = servers[c.server.to_string()];
            for (const auto& e : events) {
                fp.observe(e);
                if (const auto* x = std::get_if<Exchange>(&e)) print_exchange(*x, products);
            }
        });
        if (!source.for_each_segment([&](const capture::TcpSegment& s) { split.add(s); })) {
            std::fprintf(stderr, "kms-core-fields: %s\n", source.error().c_str());
            return 2;
        }
        split.finish();
        for (const auto& [server, fp] : servers)
            if (fp.verdict() != ServerImpl::Unknown || !fp.tells().empty())
                std::printf("server\t%s\n", server_impl_name(fp.verdict()));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kms-core-fields: %s\n", e.what());
        return 2;
    }
    return 0;
}
