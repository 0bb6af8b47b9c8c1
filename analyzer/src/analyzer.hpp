// kms-analyze's engine: capture files in, records out. Every TCP connection goes through the
// reassembler into the core's Conversation; each exchange becomes one record (a JSON object, the
// canonical form), printed as JSON lines, an aligned table or CSV. DNS SRV discovery and KMS
// connections that were never answered are records too. Everything above TCP is the core's.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kmscope/counting.hpp"
#include "kmscope/fingerprint.hpp"
#include "kmscope/products.hpp"
#include "tcp_split.hpp"

namespace kmscope::analyzer {

using Json = nlohmann::ordered_json;

enum class Format { Table, Json, Csv };

/// One --filter KEY=VALUE[,VALUE...]: all filters must match, any value of one filter may.
struct Filter {
    std::string key;  // client, server, product, version, verdict
    std::vector<std::string> values;
};

/// Parses "key=value[,value]"; nullopt (with `error`) when malformed.
std::optional<Filter> parse_filter(const std::string& text, std::string& error);

struct Options {
    Format format = Format::Table;
    bool summary = false;
    bool progress = false;
    std::vector<Filter> filters;
    std::set<std::uint16_t> kms_ports{1688};
    capture::TcpLimits limits;
};

/// Totals over everything analysed.
struct Totals {
    std::uint64_t exchanges = 0, ok = 0, not_ok = 0;
    std::uint64_t files = 0, bad_files = 0;
};

class Analyzer {
public:
    Analyzer(Options options, const ProductTable& products, std::FILE* out);
    ~Analyzer();
    /// Analyses one file ("-" is standard input); returns false (after printing why on stderr) when it
    /// could not be opened or is corrupt; what was read before the damage is still reported.
    bool run(const std::string& path);
    /// Prints the closing summary (and --summary report).
    void finish();
    const Totals& totals() const { return totals_; }

private:
    struct ConnState;
    struct Summary;
    // What the output thread needs to turn an exchange into a record.
    struct ExchangeItem {
        const std::string* file = nullptr;
        std::uint64_t stream = 0;
        std::string client, server, client_address;
        FileTime first_seen, last_seen;
        Exchange x;
        std::vector<std::string> extra;
        ServerImpl impl = ServerImpl::Unknown;
    };
    // One unit of work for the output thread: an exchange, or a finished record (dns, connection).
    struct Item {
        std::optional<ExchangeItem> exchange;
        Json record;
        bool counts_dns = false, counts_unanswered = false;
    };
    void push(Item&& item);
    void submit();
    void drain();
    void worker();
    void consume(Item& item);
    void consume_exchange(ExchangeItem& item);
    void on_events(const std::string& file, const capture::TcpConnection& c, std::vector<Event>&& events);
    void on_end(const std::string& file, const capture::TcpConnection& c);
    void on_udp(const std::string& file, const capture::UdpDatagram& d);
    void emit(const Json& record);
    bool passes(const Json& record) const;
    Json exchange_record(const ExchangeItem& item);

    Options opt_;
    const ProductTable& products_;
    std::FILE* out_;
    Totals totals_;
    bool header_done_ = false;
    std::unordered_map<std::uint64_t, ConnState> conns_;
    std::unordered_map<std::string, ServerFingerprint> fingerprints_;  // by server "ip:port"
    std::set<std::uint16_t> seen_kms_ports_;
    std::vector<std::pair<std::uint16_t, Json>> candidates_;  // unanswered connections on ports not yet known to be KMS
    std::unique_ptr<Summary> summary_;

    // Records are built, filtered and printed on an output thread, in the order they were pushed.
    std::vector<Item> batch_;
    std::deque<std::vector<Item>> queue_;
    std::mutex mu_;
    std::condition_variable wake_, idle_;
    bool busy_ = false, stop_ = false;
    std::thread thread_;
};

}  // namespace kmscope::analyzer
