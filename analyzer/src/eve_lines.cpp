// --format eve: JSON lines in the shape of Suricata's EVE output, so that pipelines built for it
// (Elastic, Splunk, Graylog, jq) take kms-analyze's records unchanged. Every record is a "kms" event
// (the --format json record under "kms"), each alert of alerts.hpp an "alert" event, and the run ends
// with a "stats" event. The schema is docs/eve.schema.json.
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ctime>
#include <map>
#include <optional>

#include "community_id.hpp"
#include "printer.hpp"
#include "record_fields.hpp"

namespace kmscope::analyzer {

namespace {

// Suricata's timestamp: microseconds and a numeric zone, "2026-09-21T14:13:20.004170+0000".
std::string eve_timestamp(FileTime t) {
    char iso[FileTime::kIso8601MaxSize];
    std::string_view s(iso, t.format_iso8601(iso));
    s = s.substr(0, s.find_first_of(".Z"));
    char micro[8];
    auto us = static_cast<unsigned>(t.ticks % 10'000'000 / 10);
    for (int i = 6; i >= 1; --i, us /= 10) micro[i] = static_cast<char>('0' + us % 10);
    micro[0] = '.';
    std::string out(s);
    out.append(micro, 7).append("+0000");
    return out;
}

// A flow number that is the same for every event of one connection of one file, below 2^53 so that
// every JSON reader keeps it exact (FNV-1a over the file name and the stream).
std::uint64_t flow_id(const std::string& file, std::string_view tail) {
    std::uint64_t h = 0xCBF29CE484222325ull;
    auto mix = [&](std::string_view s) {
        for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
    };
    mix(file);
    mix(std::string_view("\0", 1));
    mix(tail);
    return h & ((std::uint64_t{1} << 53) - 1);
}

struct Flow {
    FileTime time;
    std::uint64_t id = 0;
    const char* proto = "TCP";
    const char* app_proto = "kms";
    std::string community;
};

template <class R>
std::string community_of(const R& r, std::uint8_t proto) {
    auto a = capture::endpoint_from_text(r.client_ip, r.client_port);
    auto b = capture::endpoint_from_text(r.server_ip, r.server_port);
    return a && b && a->v6 == b->v6 ? capture::community_id(*a, *b, proto) : std::string();
}

Flow flow_of(const Record& record) {
    Flow f;
    std::visit(
        [&](const auto& r) {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, DnsRecord>) {
                f.time = r.time;
                f.proto = "UDP";
                f.app_proto = "dns";
                f.community = community_of(r, capture::kIpProtoUdp);
                f.id = flow_id(*r.file, f.community + "/dns/" + std::to_string(r.message.id));
            } else {
                if constexpr (std::is_same_v<T, ExchangeRecord>)
                    f.time = r.time();
                else
                    f.time = r.first_seen;
                f.community = community_of(r, capture::kIpProtoTcp);
                f.id = flow_id(*r.file, std::to_string(r.stream));
            }
        },
        record);
    return f;
}

class EveLines final : public Printer {
public:
    EveLines(const ProductTable& products, std::FILE* out) : products_(products), out_(out) {}

    void print(const Record& record) override {
        const Flow flow = flow_of(record);
        last_time_ = flow.time;
        count(record);
        write_event(record, flow, nullptr);
    }

    void alert(const Alert& a, const Record& record) override {
        ++alerts_[alert_name(a.kind)];
        write_event(record, flow_of(record), &a);
    }

    void finish() override {
        begin();
        key(w_, "timestamp"), fields::plain(w_, eve_timestamp(last_time_.value_or(FileTime::from_unix(time(nullptr)))));
        key(w_, "event_type"), fields::plain(w_, "stats");
        key(w_, "stats");
        w_.StartObject();
        key(w_, "kms");
        w_.StartObject();
        for (const auto& [name, n] : counts_) key(w_, name), w_.Uint64(n);
        key(w_, "alerts");
        w_.StartObject();
        for (AlertKind k : {AlertKind::FailedActivation, AlertKind::UnansweredConnection, AlertKind::SrvLookupFailed,
                            AlertKind::RogueServer})
            key(w_, alert_name(k)), w_.Uint64(alerts_[alert_name(k)]);
        w_.EndObject();
        w_.EndObject();
        w_.EndObject();
        end();
    }

private:
    static void key(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view k) { fields::key(w, k); }

    void count(const Record& record) {
        if (const auto* x = std::get_if<ExchangeRecord>(&record)) {
            ++counts_["exchanges"];
            ++counts_[x->x.ok() ? "ok" : "failed"];
        } else if (const auto* c = std::get_if<ConnectionRecord>(&record)) {
            ++counts_["connections"];
            if (c->unanswered) ++counts_["unanswered"];
        } else {
            ++counts_["dns"];
        }
    }

    void begin() {
        buffer_.Clear();
        w_.Reset(buffer_);
        w_.StartObject();
    }
    void end() {
        w_.EndObject();
        buffer_.Put('\n');
        std::fwrite(buffer_.GetString(), 1, buffer_.GetSize(), out_);
    }

    template <class R>
    void addresses(const R& r) {
        key(w_, "src_ip"), fields::plain(w_, r.client_ip);
        key(w_, "src_port"), w_.Uint64(r.client_port);
        key(w_, "dest_ip"), fields::plain(w_, r.server_ip);
        key(w_, "dest_port"), w_.Uint64(r.server_port);
    }

    void write_event(const Record& record, const Flow& flow, const Alert* alert) {
        begin();
        key(w_, "timestamp"), fields::plain(w_, eve_timestamp(flow.time));
        key(w_, "flow_id"), w_.Uint64(flow.id);
        key(w_, "event_type"), fields::plain(w_, alert ? "alert" : "kms");
        std::visit([&](const auto& r) { addresses(r); }, record);
        key(w_, "proto"), fields::plain(w_, flow.proto);
        key(w_, "app_proto"), fields::plain(w_, flow.app_proto);
        if (!flow.community.empty()) key(w_, "community_id"), fields::plain(w_, flow.community);
        if (alert) {
            key(w_, "alert");
            w_.StartObject();
            key(w_, "action"), fields::plain(w_, "allowed");
            key(w_, "gid"), w_.Uint64(1);
            key(w_, "signature_id"), w_.Uint64(alert_signature_id(alert->kind));
            key(w_, "rev"), w_.Uint64(1);
            key(w_, "signature"), fields::text(w_, alert->signature);
            key(w_, "category"), fields::plain(w_, alert_category(alert->kind));
            key(w_, "severity"), w_.Uint64(static_cast<unsigned>(alert_severity(alert->kind)));
            key(w_, "metadata");
            w_.StartObject();
            key(w_, "kmscope_alert");
            w_.StartArray();
            fields::plain(w_, alert_name(alert->kind));
            w_.EndArray();
            w_.EndObject();
            w_.EndObject();
        }
        key(w_, "kms");
        fields::write_record(w_, record, products_);
        end();
    }

    const ProductTable& products_;
    std::FILE* out_;
    rapidjson::StringBuffer buffer_;
    rapidjson::Writer<rapidjson::StringBuffer> w_;
    std::optional<FileTime> last_time_;
    std::map<std::string, std::uint64_t> counts_{{"exchanges", 0}, {"ok", 0}, {"failed", 0},
                                                 {"connections", 0}, {"unanswered", 0}, {"dns", 0}};
    std::map<std::string, std::uint64_t> alerts_;
};

}  // namespace

std::unique_ptr<Printer> make_eve_printer(const ProductTable& products, std::FILE* out) {
    return std::make_unique<EveLines>(products, out);
}

}  // namespace kmscope::analyzer
