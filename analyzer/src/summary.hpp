// --summary: a report in the spirit of a KMS host's `slmgr /dlv`. Per KMS ID the count a genuine host
// would hold now (distinct CMIDs within 30 days, capped at twice the N policy) and the requests by
// license status; per client, per server (ePIDs, HwIds, fingerprint) and per product.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "kmscope/counting.hpp"
#include "kmscope/fingerprint.hpp"
#include "kmscope/products.hpp"
#include "printer.hpp"
#include "records.hpp"

namespace kmscope::analyzer {

/// Exchanges reported, and how many of them verified.
struct ExchangeTotals {
    std::uint64_t exchanges = 0, ok = 0, not_ok = 0;
};

class Summary {
public:
    explicit Summary(const ProductTable& products) : products_(products) {}
    /// Counts one reported exchange.
    void add(const ExchangeRecord& r);
    /// Counts one reported DNS SRV message / KMS connection that was never answered.
    void add_dns() { ++dns_; }
    void add_unanswered() { ++unanswered_connections_; }
    /// Prints the report: one JSON line for Format::Json, text otherwise.
    void print(Format format, std::FILE* out, const ExchangeTotals& totals,
               const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const;

    struct Counter {
        std::uint64_t requests = 0, ok = 0, failed = 0;
        std::map<std::string, std::uint64_t> by_status;  // license status name -> requests
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
    // Read-only views of the aggregates, for the other reports built on them (--html).
    const std::map<std::string, KmsId>& kms_ids() const { return kms_ids_; }
    const std::map<std::string, Client>& clients() const { return clients_; }
    const std::map<std::string, Server>& servers() const { return servers_; }
    const std::map<std::string, Counter>& products() const { return by_product_; }
    const std::map<std::string, std::uint64_t>& failures() const { return failures_; }
    FileTime as_of() const { return latest_; }
    std::uint64_t dns_messages() const { return dns_; }
    std::uint64_t unanswered_connections() const { return unanswered_connections_; }
    /// Requests from clients beyond the first kMaxClients, which are not itemised.
    std::uint64_t unlisted_client_requests() const { return unlisted_client_requests_; }
    /// The count a genuine host would report now for that KMS ID (distinct CMIDs in 30 days, at most 2 x N).
    std::uint32_t current_count(const std::string& kms_id, const KmsId& k) const;

private:
    template <class W>
    void write_json(W& w, const ExchangeTotals& totals,
                    const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const;
    void print_text(std::FILE* out, const ExchangeTotals& totals,
                    const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const;

    // Memory stays flat on any capture: at most this many clients are itemised (the requests of the
    // others are counted), at most this many values per list, and per KMS ID only the most recent CMIDs
    // that a count of up to 2 x 2048 needs.
    static constexpr std::size_t kMaxClients = 10000, kMaxListed = 32, kCmidsPerKmsId = 4096;

    const ProductTable& products_;
    mutable MemoryCmidStore cmids_{kCmidsPerKmsId};  // counting is a query, but count_since is not const
    FileTime latest_;
    std::map<std::string, KmsId> kms_ids_;
    std::map<std::string, Client> clients_;
    std::map<std::string, Server> servers_;
    std::map<std::string, Counter> by_product_;
    std::uint64_t dns_ = 0, unanswered_connections_ = 0;
    std::uint64_t unlisted_client_requests_ = 0;  // from clients past kMaxClients
    std::map<std::string, std::uint64_t> failures_;  // outcome or last failed check -> exchanges
};

}  // namespace kmscope::analyzer
