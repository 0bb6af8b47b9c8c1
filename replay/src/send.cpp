#include "send.hpp"

#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "kmscope/conversation.hpp"
#include "kmscope/outcome.hpp"
#include "kmscope/products.hpp"
#include "kmscope/status.hpp"
#include "recorded.hpp"
#include "recorded_server.hpp"
#include "util.hpp"

namespace kmscope::replay {

namespace {

struct Flight {
    std::vector<Bytes> pdus;  // client PDUs sent back to back
    int expected = 0;         // answers the client waits for
    bool has_request = false;
};

struct Script {
    std::string name;  // "FILE stream N", as in check's lines
    std::string file;
    std::uint64_t stream = 0;  // kms-analyze's stream number of the recorded connection
    std::vector<Flight> flights;
    std::map<std::uint32_t, rpc::Ndr> call_ndr;  // for rewriting requests
    std::map<std::uint32_t, Outcome> recorded;   // recorded outcome per call id
};

Script make_script(const std::string& file, const capture::RecordedConnection& c) {
    Script s;
    s.name = file + " stream " + std::to_string(c.stream);
    s.file = file;
    s.stream = c.stream;
    for (const auto& ev : recorded_events(c)) {
        if (const auto* x = std::get_if<Exchange>(&ev)) {
            if (x->ndr) s.call_ndr[x->call_id] = *x->ndr;
            if (x->outcome != Outcome::Orphan) s.recorded[x->call_id] = x->outcome;
        }
    }
    bool in_flight = false;
    for (const auto& p : c.pdus) {
        if (p.direction != Direction::ToServer) {
            in_flight = false;
            continue;
        }
        if (!in_flight) s.flights.emplace_back();
        in_flight = true;
        auto& f = s.flights.back();
        f.pdus.push_back(p.bytes);
        if (p.bytes.size() >= rpc::kHeaderSize) {
            std::uint8_t ptype = p.bytes[2], flags = p.bytes[3];
            if (ptype == 11 || ptype == 14) ++f.expected;
            if (ptype == 0) {
                f.has_request = true;
                if (flags & rpc::flag::kLastFrag) ++f.expected;
            }
        }
    }
    return s;
}

/// A copy of a request PDU with a fresh CMID and IV (same version, NDR, call id and context).
std::optional<Bytes> vary_request(const Bytes& pdu_bytes, const Script& s, RandomSource& rng, Guid& cmid_out) {
    auto pdu = rpc::parse_pdu(pdu_bytes);
    if (!pdu) return std::nullopt;
    const auto* body = std::get_if<rpc::RequestBody>(&pdu->body);
    if (!body || (pdu->header.flags & rpc::flag::kFirstLast) != rpc::flag::kFirstLast) return std::nullopt;
    auto ndr = s.call_ndr.find(pdu->header.call_id);
    if (ndr == s.call_ndr.end()) return std::nullopt;
    auto stub = rpc::parse_request_stub(body->stub, ndr->second);
    if (!stub) return std::nullopt;
    auto req = kms::decode_request(stub->message);
    if (!req || !req->version.supported()) return std::nullopt;
    auto base = req->base;
    rng.fill(base.cmid.wire);
    cmid_out = base.cmid;
    auto msg = kms::build_request_message(base, rng);
    return rpc::build_request(pdu->header.flags, pdu->header.call_id, body->context_id, body->opnum,
                              rpc::build_request_stub(msg, ndr->second));
}

struct ConnResult {
    std::vector<Exchange> exchanges;
    std::vector<double> latencies_ms;  // per request flight
    std::vector<Guid> sent_cmids;      // with vary_cmid, in call order
    std::string error;
};

ConnResult replay_connection(const Script& s, const SockAddr& target, const SendOptions& o, RandomSource& rng) {
    ConnResult r;
    ConversationOptions copts;
    copts.emit_pdu_events = false;
    Conversation conv(copts);
    SystemClock clock;
    int fd = socket(target.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r.error = std::string("socket: ") + std::strerror(errno);
        return r;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&target.ss), target.len) != 0) {
        r.error = std::string("connect: ") + std::strerror(errno);
        ::close(fd);
        return r;
    }
    rpc::StreamFramer framer;
    std::uint8_t buf[16384];
    bool eof = false;
    std::map<std::uint32_t, Guid> cmid_by_call;
    for (const auto& f : s.flights) {
        if (eof) break;
        Bytes wire;
        for (const auto& p : f.pdus) {
            const Bytes* use = &p;
            std::optional<Bytes> varied;
            if (o.vary_cmid && p.size() > 2 && p[2] == 0) {
                Guid cmid;
                varied = vary_request(p, s, rng, cmid);
                if (varied) {
                    use = &*varied;
                    cmid_by_call[rpc::parse_header(p)->call_id] = cmid;
                }
            }
            wire.insert(wire.end(), use->begin(), use->end());
        }
        std::int64_t t0 = mono_ns();
        conv.feed(Direction::ToServer, clock.now(), wire);
        std::size_t sent = 0;
        while (sent < wire.size()) {
            ssize_t n = ::send(fd, wire.data() + sent, wire.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                r.error = std::string("send: ") + std::strerror(errno);
                eof = true;
                break;
            }
            sent += static_cast<std::size_t>(n);
        }
        int answers = 0;
        std::int64_t deadline = t0 + static_cast<std::int64_t>(o.timeout * 1e9);
        while (!eof && answers < f.expected) {
            std::int64_t left_ms = (deadline - mono_ns()) / 1000000;
            if (left_ms <= 0) {
                r.error = "timed out waiting for an answer";
                eof = true;
                break;
            }
            pollfd pfd{fd, POLLIN, 0};
            int pr = poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left_ms, 1000)));
            if (pr < 0 && errno == EINTR) continue;
            if (pr <= 0) continue;
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                r.error = n < 0 ? std::string("receive: ") + std::strerror(errno)
                                : "server closed the connection while " + std::to_string(f.expected - answers) +
                                      " answer(s) were awaited";
                eof = true;
                break;
            }
            conv.feed(Direction::ToClient, clock.now(), ByteView(buf, static_cast<std::size_t>(n)));
            framer.feed(ByteView(buf, static_cast<std::size_t>(n)));
            while (auto fr = framer.next()) {
                std::uint8_t ptype = fr->bytes[2], flags = fr->bytes[3];
                if (ptype != 2 || (flags & rpc::flag::kLastFrag)) ++answers;
            }
            if (framer.error()) {
                r.error = "server sent bytes that are not DCE/RPC";
                eof = true;
            }
        }
        if (f.has_request && answers >= f.expected) r.latencies_ms.push_back(static_cast<double>(mono_ns() - t0) / 1e6);
    }
    ::close(fd);
    conv.finish(clock.now(), eof ? EndReason::Closed : EndReason::Closed);
    for (auto& ev : conv.take_events())
        if (auto* x = std::get_if<Exchange>(&ev)) r.exchanges.push_back(std::move(*x));
    for (const auto& x : r.exchanges) {
        auto it = cmid_by_call.find(x.call_id);
        if (it != cmid_by_call.end() && x.outcome == Outcome::Response) r.sent_cmids.push_back(it->second);
    }
    return r;
}

/// True when the exchange is what a client wants: a verified response, or the refusal the recorded
/// server also gave.
bool passes(const Exchange& x, const Script& s) {
    if (x.outcome == Outcome::Response) return x.ok();
    auto rec = s.recorded.find(x.call_id);
    bool refused = x.outcome == Outcome::Hresult || x.outcome == Outcome::Fault;
    return refused && rec != s.recorded.end() && rec->second != Outcome::Response;
}

std::string exchange_line(const Exchange& x, bool pass) {
    std::string s = "call " + std::to_string(x.call_id);
    if (x.request_version) s += " v" + x.request_version->to_string();
    if (x.ndr) s += std::string(" NDR") + rpc::ndr_name(*x.ndr);
    if (x.request) s += "  " + ProductTable::builtin().name_or_guid(x.request->base.sku_id);
    if (x.response) s += "  count " + std::to_string(x.response->base.count) + "  ePID " + x.response->base.epid;
    // The core's verdict text: "ok" exactly when Exchange::ok() holds (a response that did not decode
    // is "FAIL undecodable", as it is counted).
    s += "  " + verdict_text(x);
    if (auto l = x.latency_ms()) {
        char b[32];
        std::snprintf(b, sizeof b, "  %.3f ms", *l);
        s += b;
    }
    if (x.outcome != Outcome::Response && pass) s += "  (refused as recorded)";
    return s;
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    std::size_t k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    if (k > 0) --k;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

}  // namespace

int run_send(const SendOptions& o, std::ostream& out, std::ostream& err_out) {
    std::string err;
    auto target = resolve_target(o.to, 1688, err);
    if (!target) {
        err_out << "kms-replay send: " << err << "\n";
        return 2;
    }
    std::vector<Script> scripts;
    for (const auto& path : o.captures) {
        // A capture that cannot be read whole is an input error before anything is sent: replaying the
        // part before the damage would pass for a complete run.
        capture::RecordedCapture cap = capture::read_capture(path);
        if (!cap.error.empty()) {
            err_out << "kms-replay send: " << cap.error << "\n";
            return 2;
        }
        const auto& conns = cap.connections;
        for (const auto& conn : conns) scripts.push_back(make_script(path, conn));
    }
    if (scripts.empty()) {
        err_out << "kms-replay send: no DCE/RPC connection in the captures\n";
        return 2;
    }
    const bool load = o.concurrency > 1 || o.repeat > 1 || o.duration > 0 || o.rate > 0;
    std::unique_ptr<std::ofstream> ack;
    if (!o.ack_file.empty()) {
        ack = std::make_unique<std::ofstream>(o.ack_file, std::ios::app);
        if (!*ack) {
            err_out << "kms-replay send: " << o.ack_file << ": cannot open for appending\n";
            return 2;
        }
    }
    std::mutex mu;
    std::atomic<std::uint64_t> next{0};
    std::atomic<std::uint64_t> ok_exchanges{0}, bad_exchanges{0}, conn_errors{0}, connections{0};
    std::vector<double> latencies;
    const std::uint64_t total = o.duration > 0 ? UINT64_MAX : o.repeat * scripts.size();
    const std::int64_t start = mono_ns();
    const std::int64_t stop = o.duration > 0 ? start + static_cast<std::int64_t>(o.duration * 1e9) : INT64_MAX;
    raise_nofile(o.concurrency * 2 + 64);
    auto worker = [&](unsigned) {
        SystemRandom rng;
        std::vector<double> mine;
        for (;;) {
            std::uint64_t k = next++;
            if (k >= total) break;
            if (o.rate > 0) {
                std::int64_t due = start + static_cast<std::int64_t>(static_cast<double>(k) * 1e9 / o.rate);
                std::int64_t now = mono_ns();
                if (due > now) std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
            }
            if (mono_ns() >= stop) break;
            const Script& s = scripts[k % scripts.size()];
            ConnResult r = replay_connection(s, *target, o, rng);
            ++connections;
            if (!r.error.empty()) ++conn_errors;
            std::uint64_t good = 0, bad = 0;
            for (const auto& x : r.exchanges) (passes(x, s) ? good : bad)++;
            // Recorded calls that never went out (the connection ended before) count as failures.
            std::vector<std::uint32_t> unsent;
            for (const auto& [call, outcome] : s.recorded) {
                bool seen = false;
                for (const auto& x : r.exchanges) seen = seen || x.call_id == call;
                if (!seen) unsent.push_back(call);
            }
            bad += unsent.size();
            ok_exchanges += good;
            bad_exchanges += bad;
            mine.insert(mine.end(), r.latencies_ms.begin(), r.latencies_ms.end());
            std::lock_guard lock(mu);
            if (ack)
                for (const auto& c : r.sent_cmids) *ack << c.to_string() << "\n" << std::flush;
            if (!o.quiet && !load) {
                for (const auto& x : r.exchanges) {
                    bool pass = passes(x, s);
                    if (o.json) {
                        // The shared JSON vocabulary (docs/json.md): kind, ts, file, stream, version, verdict.
                        nlohmann::json j;
                        j["kind"] = "exchange";
                        const auto t = x.request_time ? x.request_time : x.response_time;
                        j["ts"] = t ? t->to_iso8601() : nullptr;
                        j["file"] = s.file;
                        j["stream"] = s.stream;
                        j["call_id"] = x.call_id;
                        j["version"] = x.request_version ? nlohmann::json(x.request_version->to_string()) : nullptr;
                        j["outcome"] = outcome_name(x.outcome);
                        j["verdict"] = verdict_text(x);
                        j["ok"] = x.ok();
                        j["pass"] = pass;
                        std::vector<std::string> failed;
                        for (auto c : x.verdict.failed) failed.emplace_back(kms::check_name(c));
                        j["failed_checks"] = failed;
                        if (x.hresult) j["hresult"] = hex32(*x.hresult);
                        if (x.fault_status) j["fault"] = hex32(*x.fault_status);
                        if (x.response) {
                            j["epid"] = x.response->base.epid;
                            j["count"] = x.response->base.count;
                            j["activation_interval"] = x.response->base.activation_interval;
                            j["renewal_interval"] = x.response->base.renewal_interval;
                            if (x.response->hwid) j["hwid"] = x.response->hwid->to_string();
                        }
                        if (auto l = x.latency_ms()) j["latency_ms"] = *l;
                        out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
                    } else {
                        out << s.name << " " << exchange_line(x, pass) << "\n";
                    }
                }
                for (auto call : unsent) out << s.name << " call " << call << "  NOT SENT (connection ended)\n";
                if (!r.error.empty()) out << s.name << " connection: " << r.error << "\n";
            } else if (!o.quiet && (bad || !r.error.empty())) {
                for (const auto& x : r.exchanges)
                    if (!passes(x, s)) out << s.name << " " << exchange_line(x, false) << "\n";
                for (auto call : unsent) out << s.name << " call " << call << "  NOT SENT (connection ended)\n";
                if (!r.error.empty()) out << s.name << " connection: " << r.error << "\n";
            }
            latencies.insert(latencies.end(), mine.begin(), mine.end());
            mine.clear();
        }
    };
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < std::max(1u, o.concurrency); ++i) threads.emplace_back(worker, i);
    worker(0);
    for (auto& t : threads) t.join();
    const double elapsed = static_cast<double>(mono_ns() - start) / 1e9;
    const bool all_ok = bad_exchanges == 0 && conn_errors == 0 && ok_exchanges > 0;
    if (load || o.json) {
        nlohmann::json j;
        j["kind"] = "summary";
        j["connections"] = connections.load();
        j["exchanges_ok"] = ok_exchanges.load();
        j["exchanges_failed"] = bad_exchanges.load();
        j["connection_errors"] = conn_errors.load();
        j["seconds"] = elapsed;
        j["activations_per_second"] = static_cast<double>(ok_exchanges.load()) / elapsed;
        j["latency_ms"] = {{"p50", percentile(latencies, 50)},
                           {"p99", percentile(latencies, 99)},
                           {"p99.9", percentile(latencies, 99.9)},
                           {"max", latencies.empty() ? 0.0 : *std::max_element(latencies.begin(), latencies.end())}};
        if (o.json) {
            out << j.dump() << "\n";
        } else {
            char b[512];
            std::snprintf(b, sizeof b,
                          "send: %llu connections, %llu exchanges ok, %llu failed, %llu connection errors in %.2f s: "
                          "%.0f activations/s, latency p50 %.3f ms p99 %.3f ms p99.9 %.3f ms\n",
                          static_cast<unsigned long long>(connections.load()),
                          static_cast<unsigned long long>(ok_exchanges.load()),
                          static_cast<unsigned long long>(bad_exchanges.load()),
                          static_cast<unsigned long long>(conn_errors.load()), elapsed,
                          static_cast<double>(ok_exchanges.load()) / elapsed, j["latency_ms"]["p50"].get<double>(),
                          j["latency_ms"]["p99"].get<double>(), j["latency_ms"]["p99.9"].get<double>());
            out << b;
        }
    } else {
        out << "send: " << ok_exchanges.load() << " exchanges as expected, " << bad_exchanges.load() << " not, "
            << conn_errors.load() << " connection errors\n";
    }
    return all_ok ? 0 : 1;
}

}  // namespace kmscope::replay
