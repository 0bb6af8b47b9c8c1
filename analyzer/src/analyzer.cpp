#include "analyzer.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "ignored_flows.hpp"
#include "packet_batch.hpp"
#include "progress_line.hpp"
#include "record_lane.hpp"

namespace kmscope::analyzer {

namespace {

const char* connection_state(const capture::TcpConnection& c) {
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

std::string state_sentence(std::string_view state) {
    if (state == "refused") return "the SYN was answered with a reset (nothing listening, or a firewall)";
    if (state == "no_answer") return "the SYN was never answered (host down, wrong address, or filtered)";
    if (state == "reset") return "the connection was reset before any KMS answer";
    if (state == "closed") return "the connection was closed without any KMS answer";
    if (state == "idle") return "the connection went idle without any KMS answer";
    return "the capture ended before any KMS answer";
}

// DNS or multicast DNS: where KMS discovery (SRV _vlmcs._tcp) can be seen.
bool is_dns(const capture::UdpDatagram& d) {
    for (std::uint16_t port : {d.src.port, d.dst.port})
        if (port == 53 || port == 5353) return true;
    return false;
}

}  // namespace

// Stream-level diagnostics one connection may print; past it they are counted and summarised in one
// line, so that a hostile file (one connection with 400,000 TCP holes) keeps memory and records flat.
constexpr std::uint64_t kMaxStreamDiagnostics = 64;

// Per-connection state kept while the connection is open.
struct Analyzer::ConnState {
    std::vector<std::string> diagnostics;    // stream-level, not yet attached to an exchange
    std::uint64_t diagnostics_seen = 0;      // over the connection's life, kept and left out
    std::uint64_t diagnostics_left_out = 0;  // since the last record that told the kept ones
    /// The kept diagnostics and, past the cap, the line that counts the rest; leaves none behind.
    std::vector<std::string> take_diagnostics() {
        if (diagnostics_left_out)
            diagnostics.push_back(std::to_string(diagnostics_left_out) + " more stream diagnostics left out (at most " +
                                  std::to_string(kMaxStreamDiagnostics) + " per connection are listed)");
        diagnostics_left_out = 0;
        return std::exchange(diagnostics, {});
    }
    std::string client, server, client_ip, server_ip;
    ServerFingerprint* fp = nullptr;  // of this connection's server
    std::uint64_t exchanges = 0;
    bool answered = false;  // a KMS response, HRESULT or fault came back
};

// One input being read: its connections and server fingerprints, and where its records go.
struct Analyzer::FileRun {
    explicit FileRun(const std::string& name) : file(name) {}
    const std::string& file;                             // names it in records, and outlives them
    std::unique_ptr<RecordLane<Record>> lane;            // none: records go to pipe_ (live) or are printed at once
    bool progress = false;                               // this file's own progress line
    std::unordered_map<std::uint64_t, ConnState> conns;  // open KMS connections, by index
    ConnState* last_conn = nullptr;                      // conns[last_index], or none
    std::uint64_t last_index = 0;
    std::map<capture::Endpoint, ServerFingerprint> fingerprints;  // this file's, by server (named at the end)
    std::set<std::uint16_t> seen_kms_ports;
    // Unanswered connections, by server port, on ports not yet known to be KMS.
    std::vector<std::pair<std::uint16_t, ConnectionRecord>> candidates;
    std::string errors;  // said on stderr once the file's records are out
    bool ok = true;
    std::uint64_t bytes = 0, packets = 0;  // read, once the file is done
};

void Analyzer::emit(FileRun& run, Record&& record) {
    if (run.lane)
        run.lane->emplace(std::move(record));
    else if (pipe_)
        pipe_->emplace(std::move(record));
    else
        output(record);
}

Analyzer::Analyzer(Options options, const ProductTable& products, std::FILE* out)
    : opt_(std::move(options)),
      products_(products),
      out_(out),
      printer_(make_printer(opt_.format, products, out)),
      summary_(opt_.summary ? std::make_unique<Summary>(products) : nullptr),
      report_(opt_.html ? std::make_unique<HtmlReport>(products) : nullptr),
      alert_rules_(opt_.expect_servers) {}

Analyzer::~Analyzer() = default;

void Analyzer::output(Record& record) {
    if (!passes(opt_.filters, record, products_)) return;
    if (before_output_) before_output_();
    printer_->print(record);
    if (opt_.alerts)
        for (const Alert& a : alert_rules_.check(record)) {
            printer_->alert(a, record);
            ++live_.alerts;
        }
    if (report_) report_->add(record);
    if (auto* x = std::get_if<ExchangeRecord>(&record)) {
        ++totals_.exchanges;
        ++live_.exchanges;
        ++(x->x.ok() ? totals_.ok : totals_.not_ok);
        if (summary_) summary_->add(*x);
    } else if (summary_) {
        if (std::holds_alternative<DnsRecord>(record))
            summary_->add_dns();
        else if (std::get<ConnectionRecord>(record).unanswered)
            summary_->add_unanswered();
    }
}

void Analyzer::on_events(FileRun& run, const capture::TcpConnection& c, std::vector<Event>&& events) {
    if (!c.conversation.is_kms()) return;  // other DCE/RPC, or not DCE/RPC at all
    // A connection's events come packet by packet, mostly in a row: the last one's state is kept at hand.
    if (!run.last_conn || run.last_index != c.index) {
        run.last_conn = &run.conns[c.index];  // nodes stay where they are until erased (on_end forgets it)
        run.last_index = c.index;
    }
    ConnState& st = *run.last_conn;
    if (!st.fp) {
        st.client = c.client.to_string();
        st.server = c.server.to_string();
        st.client_ip = capture::Endpoint::address_in(st.client, c.client.v6);  // formatted once
        st.server_ip = capture::Endpoint::address_in(st.server, c.server.v6);
        st.fp = &run.fingerprints[c.server];
        run.seen_kms_ports.insert(c.server.port);
    }
    for (auto& e : events) {
        st.fp->observe(e);
        if (const auto* d = std::get_if<Diagnostic>(&e)) {
            if (++st.diagnostics_seen > kMaxStreamDiagnostics) {
                ++st.diagnostics_left_out;
                continue;
            }
            st.diagnostics.push_back(std::string(direction_name(d->direction)) + " at byte " +
                                     std::to_string(d->stream_offset) + ": " + d->message);
            continue;
        }
        auto* x = std::get_if<Exchange>(&e);
        if (!x) continue;
        ++st.exchanges;
        if (x->outcome != Outcome::NoResponse) st.answered = true;
        Record record(std::in_place_type<ExchangeRecord>);  // built where it is printed or queued from
        auto& r = std::get<ExchangeRecord>(record);
        r.file = &run.file;
        r.stream = c.index - 1;
        r.client = st.client;
        r.server = st.server;
        r.client_ip = st.client_ip;
        r.server_ip = st.server_ip;
        r.client_port = c.client.port;
        r.server_port = c.server.port;
        r.first_seen = c.first_seen;
        r.last_seen = c.last_seen;
        r.x = std::move(*x);
        r.stream_diagnostics = st.take_diagnostics();
        r.impl = st.fp->verdict();
        emit(run, std::move(record));
    }
}

void Analyzer::on_end(FileRun& run, const capture::TcpConnection& c) {
    auto it = run.conns.find(c.index);
    if (run.last_index == c.index) run.last_conn = nullptr;
    const bool kms = c.conversation.is_kms();
    const bool candidate = !kms && !c.ignored && c.syn_seen && c.to_client.bytes == 0;
    ConnState st;
    if (it != run.conns.end()) {
        st = std::move(it->second);
        run.conns.erase(it);
    }
    if (!kms && !candidate) return;
    if (kms && st.diagnostics.empty() && !st.diagnostics_left_out && (st.answered || st.exchanges > 0))
        return;  // fully told by its exchanges
    ConnectionRecord r;
    r.file = &run.file;
    r.stream = c.index - 1;
    r.first_seen = c.first_seen;
    r.client = c.client.to_string();
    r.server = c.server.to_string();
    r.client_ip = c.client.address_string();
    r.server_ip = c.server.address_string();
    r.client_port = c.client.port;
    r.server_port = c.server.port;
    r.state = connection_state(c);
    r.kms = kms;
    r.client_bytes = c.to_server.bytes;
    r.server_bytes = c.to_client.bytes;
    if (kms) {
        if (!st.answered && st.exchanges == 0)
            r.diagnostics.push_back("no KMS request was answered: " + state_sentence(r.state));
        for (auto& d : st.take_diagnostics()) r.diagnostics.push_back(std::move(d));
        r.unanswered = !st.answered;
        emit(run, std::move(r));
        return;
    }
    r.diagnostics.push_back(state_sentence(r.state));
    r.unanswered = true;
    if (opt_.kms_ports.count(c.server.port) || run.seen_kms_ports.count(c.server.port)) {
        emit(run, std::move(r));
    } else if (run.candidates.size() < 4096) {
        run.candidates.emplace_back(c.server.port, std::move(r));  // decided at the end of the file
    }
}

void Analyzer::on_udp(FileRun& run, const capture::UdpDatagram& d) {
    auto m = parse_kms_discovery(d.payload);
    if (!m) return;
    DnsRecord r;
    r.file = &run.file;
    r.time = d.time;
    const capture::Endpoint& client = m->response ? d.dst : d.src;
    const capture::Endpoint& server = m->response ? d.src : d.dst;
    r.client = client.to_string();
    r.server = server.to_string();
    r.client_ip = client.address_string();
    r.server_ip = server.address_string();
    r.client_port = client.port;
    r.server_port = server.port;
    r.message = std::move(*m);
    emit(run, std::move(r));
}

void Analyzer::close_file(FileRun& run) {
    std::fflush(out_);
    std::fputs(run.errors.c_str(), stderr);
    ++totals_.files;
    if (!run.ok) ++totals_.bad_files;
    for (auto& [server, fp] : run.fingerprints) fingerprints_[server.to_string()].absorb(fp);
    run.fingerprints.clear();
}

bool Analyzer::run(const std::vector<std::string>& files, unsigned jobs) {
    const std::size_t n_workers = std::clamp<std::size_t>(jobs, 1, std::max<std::size_t>(files.size(), 1));
    if (n_workers == 1 && !opt_.pipeline) {
        // One file at a time on this thread: reading, reassembly and printing with no hand-over between
        // threads, which costs about a third more CPU than the work itself (bench/analyzer/README.md).
        bool ok = true;
        for (const auto& f : files) {
            FileRun run(f);
            run.progress = opt_.progress;
            analyse_file(run);
            close_file(run);
            ok = ok && run.ok;
        }
        return ok;
    }
    std::vector<std::unique_ptr<FileRun>> runs;
    for (const auto& f : files) {
        runs.push_back(std::make_unique<FileRun>(f));
        runs.back()->lane = std::make_unique<RecordLane<Record>>();
        runs.back()->progress = opt_.progress && n_workers == 1;
    }
    // Workers take the files in order, and file i only while fewer than n_workers files are taken but not
    // yet printed: the file being printed is always one being read (or read), and memory stays at
    // n_workers files' worth however many small files follow a big one.
    std::mutex turns_mu;
    std::condition_variable turns_cv;
    std::size_t next = 0, printed = 0;
    bool stopping = false;
    auto take = [&]() -> std::optional<std::size_t> {
        std::unique_lock lock(turns_mu);
        turns_cv.wait(lock, [&] { return stopping || next >= runs.size() || next < printed + n_workers; });
        if (stopping || next >= runs.size()) return std::nullopt;
        return next++;
    };
    std::vector<std::thread> workers;
    // Whatever way this function is left: no file is started any more, the files being read are read to
    // their end (their lanes emptied) and the workers joined, so no thread outlives the state it uses.
    struct Finally {
        std::function<void()> f;
        ~Finally() { f(); }
    } stop_workers{[&] {
        std::size_t taken;
        {
            std::lock_guard lock(turns_mu);
            stopping = true;
            taken = next;
        }
        turns_cv.notify_all();
        std::vector<Record> discard;
        for (std::size_t i = printed; i < taken; ++i)
            while (runs[i]->lane->pop(discard)) discard.clear();
        for (auto& w : workers) w.join();
    }};
    for (std::size_t w = 0; w < n_workers; ++w) {
        try {
            workers.emplace_back([&] {
                while (auto i = take()) analyse_file(*runs[*i]);
            });
        } catch (const std::system_error& e) {
            if (!workers.empty()) break;  // fewer workers than asked for
            std::fprintf(stderr, "kms-analyze: cannot start a thread: %s\n", e.what());
            return false;
        }
    }
    bool ok = true;
    const bool show = opt_.progress && runs.size() > 1 && n_workers > 1;
    ProgressLine progress(std::to_string(runs.size()) + " files");
    std::uint64_t bytes = 0, packets = 0;
    for (auto& run : runs) {
        // This thread prints: this file's records, then its errors, then the next file's records.
        std::vector<Record> batch;
        while (run->lane->pop(batch)) {
            for (Record& r : batch) output(r);
            batch.clear();
        }
        if (show) progress.clear();
        close_file(*run);
        ok = ok && run->ok;
        bytes += run->bytes;
        packets += run->packets;
        {
            std::lock_guard lock(turns_mu);
            ++printed;
        }
        turns_cv.notify_all();
        if (show && printed < runs.size())
            progress.show(static_cast<double>(printed) / static_cast<double>(runs.size()), bytes, packets);
    }
    return ok;
}

void Analyzer::analyse_file(FileRun& run) {
    try {
        capture::PacketSource source(run.file);
        run.ok = read(source, run);
    } catch (const std::exception& e) {
        run.errors += std::string("kms-analyze: ") + e.what() + "\n";
        run.ok = false;
    }
    if (run.lane) run.lane->close();  // the last touch: the output may now take the run's results
}

bool Analyzer::run_live(const capture::LiveOptions& live, const std::atomic<bool>& stop,
                        const std::function<void(const capture::PacketSource&)>& tick) {
    const std::string name = "live:" + live.interface;  // records point at it until the pipe is drained
    FileRun run(name);
    // The reading thread only reads, so that a burst of KMS is not a burst of kernel drops; records leave
    // one by one, as they complete.
    pipe_ = std::make_unique<BatchPipe<Record>>([this](Record& r) { output(r); }, 1);
    try {
        capture::PacketSource source(live);
        if (on_open_) on_open_();
        source.set_stop_flag(&stop);
        run.ok = read(source, run, [&] { tick(source); });
    } catch (const std::exception& e) {
        run.errors += std::string("kms-analyze: ") + e.what() + "\n";
        run.ok = false;
    }
    pipe_->drain();
    std::fflush(out_);
    std::fputs(run.errors.c_str(), stderr);
    for (auto& [server, fp] : run.fingerprints) fingerprints_[server.to_string()].absorb(fp);
    return run.ok;
}

bool Analyzer::read(capture::PacketSource& source, FileRun& run, const std::function<void()>& tick) {
    bool ok = true;
    try {
        capture::TcpSplit split(
            [&](const capture::TcpConnection& c, std::vector<Event>&& events) { on_events(run, c, std::move(events)); },
            opt_.limits);
        split.on_end([&](const capture::TcpConnection& c) { on_end(run, c); });
        const bool pipelined = opt_.pipeline || source.live();
        ok = pipelined ? read_pipelined(source, run, split, tick) : read_here(source, run, split);
        if (!ok) run.errors += "kms-analyze: " + source.error() + "\n";
        split.finish();
        for (auto& [port, r] : run.candidates)
            if (run.seen_kms_ports.count(port)) emit(run, std::move(r));
        run.candidates.clear();
        run.conns.clear();
        run.last_conn = nullptr;
    } catch (const std::exception& e) {
        run.errors += std::string("kms-analyze: ") + e.what() + "\n";
        ok = false;
    }
    return ok;
}

bool Analyzer::read_here(capture::PacketSource& source, FileRun& run, capture::TcpSplit& split) {
    source.set_udp_handler([&](const capture::UdpDatagram& d) {
        if (is_dns(d)) on_udp(run, d);
    });
    std::uint64_t n = 0;
    const bool show = run.progress;
    ProgressLine progress(run.file);
    const bool ok = source.for_each_segment([&](const capture::TcpSegment& s) {
        split.add(s);
        if ((++n & 0xFFFF) == 0 && show) progress.show(source.progress(), source.offset(), n);
    });
    if (show && n >= 0x10000) progress.clear();
    run.bytes = source.offset();
    run.packets = n;
    return ok;
}

bool Analyzer::read_pipelined(capture::PacketSource& source, FileRun& run, capture::TcpSplit& split,
                              const std::function<void()>& tick) {
    IgnoredFlows ignored;
    split.on_ignore([&](const capture::TcpConnection& c) { ignored.report(c.client, c.server); });
    // This thread reads and decodes packets; the reassembly thread below does TCP and everything above it.
    std::string reassembly_error;
    SparePackets spares;
    bool ok = true;
    {
        BatchPipe<PacketBatch> reassembly(
            [&](PacketBatch& batch) {
                if (reassembly_error.empty()) {
                    try {
                        batch.replay([&](const capture::TcpSegment& s) { split.add(s); },
                                     [&](const capture::UdpDatagram& d) { on_udp(run, d); });
                        live_.open_connections.store(split.open_connections(), std::memory_order_relaxed);
                        live_.evicted_connections.store(split.evicted(), std::memory_order_relaxed);
                    } catch (const std::exception& e) {
                        reassembly_error = e.what();
                    }
                }
                spares.put(std::move(batch));
            },
            1, kBatchesInFlight);
        PacketBatch batch = spares.take();
        auto pass_on = [&] {
            reassembly.push(std::move(batch));
            batch = spares.take();
        };
        auto flush_if_full = [&] {
            if (batch.full()) pass_on();
        };
        source.set_udp_handler([&](const capture::UdpDatagram& d) {
            if (!is_dns(d)) return;
            batch.add(d);
            flush_if_full();
        });
        std::uint64_t n = 0;
        const bool show = run.progress && !source.live();
        ProgressLine progress(run.file);
        auto on_segment = [&](const capture::TcpSegment& s) {
            // Every segment goes through skip_payload(): SYN, FIN and RST end what it knows.
            if (ignored.skip_payload(s, opt_.limits.idle_ticks) && !s.payload.empty())
                batch.add_without_payload(s);
            else
                batch.add(s);
            flush_if_full();
            if ((++n & 0xFFFF) == 0 && show) progress.show(source.progress(), source.offset(), n);
        };
        // Live: what the interface gave is passed on at every poll, not when a batch is full.
        source.set_tick_handler([&] {
            if (!batch.empty()) pass_on();
            if (tick) tick();
        });
        ok = source.for_each_segment(on_segment);
        if (!batch.empty()) reassembly.push(std::move(batch));
        if (show && n >= 0x10000) progress.clear();
        run.bytes = source.offset();
        run.packets = n;
    }  // the reassembly thread has seen every packet
    if (!reassembly_error.empty()) throw std::runtime_error(reassembly_error);
    return ok;
}

void Analyzer::finish() {
    if (pipe_) pipe_->drain();
    printer_->finish();
    if (opt_.format == Format::Table)
        std::fprintf(out_, "%llu exchanges, %llu ok, %llu not ok\n", static_cast<unsigned long long>(totals_.exchanges),
                     static_cast<unsigned long long>(totals_.ok), static_cast<unsigned long long>(totals_.not_ok));
    if (summary_) summary_->print(opt_.format, out_, totals_, fingerprints_);
    if (report_) report_->write(opt_.html, totals_, fingerprints_);
}

}  // namespace kmscope::analyzer
