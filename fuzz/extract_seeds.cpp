// Cuts seed corpora for the fuzz targets out of the real captures.
// Usage: extract_seeds CAPTURES_DIR OUT_DIR
// Writes OUT_DIR/<target>/<hash> files in the input formats the targets document (fuzz/fuzz_*.cpp):
//   fuzz_pcap          every capture file as is
//   fuzz_analyze       the same
//   fuzz_pdu           every PDU of every direction, and every reassembled request/response
//   fuzz_server        every client->server direction and every client PDU, behind a config byte and a
//                      chunking byte
//   fuzz_serve_path    every client->server direction, behind config, sync-failure and chunking bytes
//   fuzz_ndr           every request and response stub
//   fuzz_kms           every KMS request and response message (mode 0), every request/response pair (mode 1)
//                      and the fields of every exchange for the builders (mode 2)
//   fuzz_stream        every direction, whole and split at its real TCP segment boundaries
//   fuzz_conversation  every connection as its sequence of (direction, length, bytes) segment records
//   fuzz_epid          every ePID (text and parts), HwId, and a product CSV made of the captured GUIDs
// Exits non-zero when a capture cannot be read or yields nothing, so that a broken seed set is noticed.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "kmscope/conversation.hpp"
#include "kmscope/epid.hpp"
#include "kmscope/stream.hpp"
#include "packet_source.hpp"

namespace fs = std::filesystem;
using namespace kmscope;

namespace {

class SeedWriter {
public:
    explicit SeedWriter(fs::path root) : root_(std::move(root)) {}

    void write(const std::string& target, ByteView bytes) {
        if (bytes.empty()) return;
        // FNV-1a 64 of the content names the file, so duplicates collapse.
        std::uint64_t h = 0xcbf29ce484222325ull;
        for (auto b : bytes) h = (h ^ b) * 0x100000001b3ull;
        char name[17];
        std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(h));
        fs::path dir = root_ / target;
        fs::create_directories(dir);
        fs::path file = dir / name;
        if (fs::exists(file)) return;
        std::ofstream out(file, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        if (!out) throw std::runtime_error("cannot write " + file.string());
        ++counts_[target];
    }
    void write(const std::string& target, std::uint8_t prefix, ByteView bytes) {
        Bytes b{prefix};
        b.insert(b.end(), bytes.begin(), bytes.end());
        write(target, b);
    }
    void write(const std::string& target, std::uint8_t prefix, std::string_view text) {
        write(target, prefix, ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    }
    const std::map<std::string, std::size_t>& counts() const { return counts_; }

private:
    fs::path root_;
    std::map<std::string, std::size_t> counts_;
};

struct Record {
    Direction dir;
    Bytes bytes;
};

struct Connection {
    capture::Endpoint client, server;
    std::vector<Record> records;
    bool have_seq[2] = {false, false};
    std::uint32_t next_seq[2] = {0, 0};
};

// Groups the segments of a capture into connections (in order of appearance), dropping retransmitted bytes.
std::vector<Connection> read_connections(const fs::path& file) {
    capture::PacketSource source(file.string());
    using Key = std::pair<capture::Endpoint, capture::Endpoint>;
    std::map<Key, std::size_t> open;
    std::vector<Connection> conns;
    source.for_each_segment([&](const capture::TcpSegment& seg) {
        const Key key = seg.src < seg.dst ? Key{seg.src, seg.dst} : Key{seg.dst, seg.src};
        const bool syn = seg.flags & capture::tcpflag::kSyn, ack = seg.flags & capture::tcpflag::kAck;
        auto it = open.find(key);
        if (it != open.end() && syn && !ack) {
            open.erase(it);  // port reuse: a new connection
            it = open.end();
        }
        if (it == open.end()) {
            Connection c;
            const bool src_is_client = syn ? !ack : seg.dst.port < seg.src.port;
            c.client = src_is_client ? seg.src : seg.dst;
            c.server = src_is_client ? seg.dst : seg.src;
            conns.push_back(std::move(c));
            it = open.emplace(key, conns.size() - 1).first;
        }
        Connection& c = conns[it->second];
        const Direction dir = seg.src == c.client ? Direction::ToServer : Direction::ToClient;
        const int d = static_cast<int>(dir);
        if (syn) {
            c.have_seq[d] = true;
            c.next_seq[d] = seg.seq + 1;
        }
        if (seg.payload.empty()) return;
        ByteView data = seg.payload;
        if (!c.have_seq[d]) {
            c.have_seq[d] = true;
            c.next_seq[d] = seg.seq;
        }
        auto delta = static_cast<std::int32_t>(seg.seq - c.next_seq[d]);
        if (delta < 0) {
            auto overlap = static_cast<std::size_t>(-static_cast<std::int64_t>(delta));
            data = overlap >= data.size() ? ByteView{} : data.subspan(overlap);
        }
        if (delta > 0) c.next_seq[d] = seg.seq;
        if (data.empty()) return;
        c.next_seq[d] += static_cast<std::uint32_t>(data.size());
        c.records.push_back(Record{dir, Bytes(data.begin(), data.end())});
    });
    if (!source.error().empty()) throw std::runtime_error(source.error());
    return conns;
}

void put_u16(Bytes& b, std::size_t v) {
    b.push_back(static_cast<std::uint8_t>(v));
    b.push_back(static_cast<std::uint8_t>(v >> 8));
}

void put_u32(Bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void put(Bytes& b, ByteView v) {
    b.insert(b.end(), v.begin(), v.end());
}

// fuzz_kms mode 2 (see check_built in fuzz_kms.cpp): the fields of a real exchange.
Bytes builder_seed(const kms::DecodedRequest& q, const kms::DecodedResponse* p) {
    Bytes b{2, static_cast<std::uint8_t>(q.version.major - 4), 0x07};
    Writer w;
    kms::write_base_request(w, q.base);
    w.bytes(q.iv);
    w.u32le(p ? p->base.count : 50);
    w.u32le(p ? p->base.activation_interval : 120);
    w.u32le(p ? p->base.renewal_interval : 10080);
    w.bytes(p && p->hwid ? p->hwid->bytes : kVlmcsdDefaultHwId.bytes);
    w.bytes(p ? p->random_xored_ivs : q.x);  // stands in for S, which the wire does not show
    w.bytes(p ? p->iv : q.iv);
    put(b, w.buffer());
    if (p) put(b, ByteView(reinterpret_cast<const std::uint8_t*>(p->base.epid.data()), p->base.epid.size()));
    return b;
}

void seed_epid(SeedWriter& out, const std::string& epid) {
    out.write("fuzz_epid", 0, epid);
    if (auto parts = parse_epid(epid)) {
        Bytes b{1};
        for (std::uint32_t v :
             {parts->platform, parts->group, parts->key_id, parts->channel, parts->lcid, parts->build})
            put_u32(b, v);
        put_u16(b, parts->day_of_year);
        put_u16(b, parts->year);
        out.write("fuzz_epid", b);
    }
}

void seed_connection(SeedWriter& out, const Connection& c, std::set<std::string>& csv_rows) {
    // fuzz_conversation: [options] records.
    Bytes conv{0};
    Bytes dirs[2];
    std::vector<std::size_t> cuts[2];
    for (const auto& r : c.records) {
        const int d = static_cast<int>(r.dir);
        for (std::size_t off = 0; off < r.bytes.size(); off += 0xFFFF) {
            const std::size_t n = std::min<std::size_t>(0xFFFF, r.bytes.size() - off);
            conv.push_back(static_cast<std::uint8_t>(d));
            put_u16(conv, n);
            put(conv, ByteView(r.bytes).subspan(off, n));
        }
        if (!dirs[d].empty()) cuts[d].push_back(dirs[d].size());
        put(dirs[d], r.bytes);
    }
    out.write("fuzz_conversation", conv);

    for (int d = 0; d < 2; ++d) {
        if (dirs[d].empty()) continue;
        // fuzz_stream: [n] [n x u16 cuts] stream; whole, and split where TCP split it.
        out.write("fuzz_stream", 0, dirs[d]);
        Bytes split{static_cast<std::uint8_t>(std::min<std::size_t>(cuts[d].size(), 15))};
        for (std::size_t i = 0; i < cuts[d].size() && i < 15; ++i) put_u16(split, cuts[d][i]);
        put(split, dirs[d]);
        out.write("fuzz_stream", split);
        if (d == 0) {
            // fuzz_server: [config] [chunking] client stream (a Windows 8+ host, then a Windows 7 host in chunks).
            Bytes s{0x07, 0x00};
            put(s, dirs[d]);
            out.write("fuzz_server", s);
            Bytes s7{0x46, 0x2a};
            put(s7, dirs[d]);
            out.write("fuzz_server", s7);
            // fuzz_serve_path: [config] [sync failures] [chunking] client stream: genuine counts on a
            // Windows 8+ host with every sync succeeding, then a Windows 7 host with JSON lines, limits
            // and the first sync failing, in chunks.
            Bytes p{0x0b, 0x00, 0x00};
            put(p, dirs[d]);
            out.write("fuzz_serve_path", p);
            Bytes p7{0x5e, 0x01, 0x2a};
            put(p7, dirs[d]);
            out.write("fuzz_serve_path", p7);
        }

        rpc::StreamFramer framer;
        rpc::FragmentAssembler assembler;
        framer.feed(dirs[d]);
        while (auto f = framer.next()) {
            out.write("fuzz_pdu", f->bytes);
            if (d == 0) {
                Bytes s{0x07, 0x00};
                put(s, f->bytes);
                out.write("fuzz_server", s);
            }
            auto pdu = rpc::parse_pdu(f->bytes);
            if (!pdu) continue;
            auto whole = assembler.add(*pdu, f->bytes);
            if (whole && *whole && **whole != f->bytes) out.write("fuzz_pdu", **whole);
            if (const auto* q = std::get_if<rpc::RequestBody>(&pdu->body)) out.write("fuzz_ndr", q->stub);
            if (const auto* r = std::get_if<rpc::ResponseBody>(&pdu->body)) out.write("fuzz_ndr", r->stub);
        }
    }

    // KMS messages and ePIDs from the decoded exchanges.
    Conversation conversation;
    FileTime t{};
    for (const auto& r : c.records) conversation.feed(r.dir, t, r.bytes);
    conversation.finish(t);
    for (const Event& ev : conversation.take_events()) {
        const auto* e = std::get_if<Exchange>(&ev);
        if (!e) continue;
        out.write("fuzz_kms", 0, e->request_message);
        out.write("fuzz_kms", 0, e->response_message);
        if (!e->request_message.empty() && !e->response_message.empty()) {
            Bytes pair{1};
            put_u16(pair, e->request_message.size());
            put(pair, e->request_message);
            put(pair, e->response_message);
            out.write("fuzz_kms", pair);
        }
        if (e->request) {
            out.write("fuzz_kms", builder_seed(*e->request, e->response ? &*e->response : nullptr));
            const auto& b = e->request->base;
            const std::string app = b.app_id.to_string(), kms = b.kms_id.to_string();
            csv_rows.insert("sku," + b.sku_id.to_string() + ",Captured SKU " + b.sku_id.to_string().substr(0, 8) + "," +
                            app + "," + kms + "," + std::to_string(std::min<std::uint32_t>(b.n_policy, 1000)) + "," +
                            std::to_string(e->request->version.major));
            csv_rows.insert("kms," + kms + ",\"Captured KMS ID, " + kms.substr(0, 8) + "\"," + app + ",,,");
            csv_rows.insert("app," + app + ",Captured application,,,,");
        }
        if (e->response) {
            seed_epid(out, e->response->base.epid);
            if (e->response->hwid) out.write("fuzz_epid", 3, e->response->hwid->to_string());
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: extract_seeds CAPTURES_DIR OUT_DIR\n";
        return 2;
    }
    const fs::path captures = argv[1];
    SeedWriter out{fs::path(argv[2])};
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(captures)) {
        const auto ext = entry.path().extension();
        if (entry.is_regular_file() && (ext == ".pcap" || ext == ".pcapng")) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::cerr << "extract_seeds: no .pcap/.pcapng files in " << captures << "\n";
        return 1;
    }
    std::set<std::string> csv_rows;
    int failures = 0;
    for (const auto& file : files) {
        try {
            std::ifstream in(file, std::ios::binary);
            Bytes raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            out.write("fuzz_pcap", raw);
            out.write("fuzz_analyze", raw);
            auto conns = read_connections(file);
            if (conns.empty()) throw std::runtime_error("no TCP connection");
            for (const auto& c : conns) seed_connection(out, c, csv_rows);
        } catch (const std::exception& e) {
            std::cerr << "extract_seeds: " << file.string() << ": " << e.what() << "\n";
            ++failures;
        }
    }
    // fuzz_epid mode 2: the captured products as a user CSV, merged into an empty and into the built-in table.
    std::string csv = "kind,guid,name,app_guid,kms_guid,n_policy,protocol\r\n";
    for (const auto& row : csv_rows) csv += row + "\r\n";
    out.write("fuzz_epid", 2, csv);
    out.write("fuzz_epid", 0x12, csv);
    out.write("fuzz_epid", 2,
              std::string_view("kind,guid,name,gvlk,epid_csvlk\nsku,{00000000-0000-0000-0000-000000000001},"
                               "\"A \"\"quoted\"\" name\",AAAAA-BBBBB-CCCCC-DDDDD-EEEEE,Office2019\n"));

    for (const auto& [target, n] : out.counts()) std::cout << "extract_seeds: " << target << ": " << n << " seeds\n";
    return failures ? 1 : 0;
}
