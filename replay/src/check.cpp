#include "check.hpp"

#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_map>

#include "kmscope/conversation.hpp"
#include "kmscope/outcome.hpp"
#include "kmscope/server.hpp"
#include "kmscope/status.hpp"
#include "recorded.hpp"
#include "recorded_server.hpp"

namespace kmscope::replay {

namespace {

/// Hands out the random values the recorded server used for one response.
class ScriptRandom final : public RandomSource {
public:
    void set(Bytes script) {
        script_ = std::move(script);
        pos_ = 0;
    }
    void fill(std::span<std::uint8_t> out) override {
        for (auto& b : out) b = pos_ < script_.size() ? script_[pos_++] : (++overdrawn_, 0);
    }
    std::size_t overdrawn() const { return overdrawn_; }

private:
    Bytes script_;
    std::size_t pos_ = 0;
    std::size_t overdrawn_ = 0;
};

std::string failed_checks(const kms::Verdict& v) {
    std::string s;
    for (auto c : v.failed) {
        if (!s.empty()) s += ',';
        s += kms::check_name(c);
    }
    return s;
}

}  // namespace

CheckSummary run_check(const std::vector<std::string>& captures, std::ostream& out, std::ostream& err, bool json) {
    CheckSummary sum;
    for (const auto& path : captures) {
        // The capture library's reader: the same reassembly and the same read errors as kms-analyze.
        // Connections read before damage are still checked; the error makes the exit status 2.
        capture::RecordedCapture cap = capture::read_capture(path);
        const auto& conns = cap.connections;
        if (!cap.error.empty()) {
            err << "kms-replay check: " << cap.error << "\n";
            ++sum.errors;
        }
        const RecordedServer learned = learn_server(conns);
        for (std::size_t ci = 0; ci < conns.size(); ++ci) {
            const auto& conn = conns[ci];
            std::vector<Exchange> recorded;
            std::uint32_t assoc_group = 0;
            for (auto& ev : recorded_events(conn)) {
                if (auto* x = std::get_if<Exchange>(&ev)) recorded.push_back(std::move(*x));
                if (auto* n = std::get_if<ContextNegotiation>(&ev);
                    n && !n->alter_context && n->answered && !assoc_group)
                    assoc_group = n->assoc_group;
            }
            // The recorded answer each request is replayed with: the last exchange with that call id that has
            // both halves (looked up once, so a connection with many calls stays linear).
            std::unordered_map<std::uint32_t, const Exchange*> answered_call;
            for (const auto& x : recorded)
                if (x.request && x.response) answered_call[x.call_id] = &x;
            // The same server path as serve, configured as the recorded server.
            server::ServerContext ctx;
            {
                SeededRandom seed(0);
                ctx.identity = server::HostIdentity::create(ctx.config, FileTime::from_unix(1700000000), seed);
            }
            apply_recorded(learned, ctx);
            server::ServerConnection sc(ctx, assoc_group ? assoc_group : 1, conn.server.port);
            FixedClock clock(conn.pdus.empty() ? FileTime{} : conn.pdus.front().time);
            ScriptRandom rng;
            ConversationOptions copts;
            copts.emit_pdu_events = false;
            Conversation ours(copts);
            bool closed = false;
            for (const auto& p : conn.pdus) {
                if (p.direction != Direction::ToServer) continue;
                clock.set(p.time);
                rng.set({});
                if (auto h = rpc::parse_header(p.bytes); h && h->ptype == 0) {
                    if (auto it = answered_call.find(h->call_id); it != answered_call.end()) {
                        const Exchange& x = *it->second;
                        // This response's server fields and random values, as recorded.
                        RecordedFields f = fields_of(*x.response);
                        for (const auto& fam : csvlk_families())
                            ctx.identity.set(std::string(fam.name),
                                             server::FamilyIdentity{f.epid, f.hwid.value_or(kVlmcsdDefaultHwId)});
                        ctx.config.activation_interval = f.activation_interval;
                        ctx.config.renewal_interval = f.renewal_interval;
                        ctx.counts = std::make_shared<PerKmsIdCountPolicy>(
                            std::map<Guid, std::uint32_t>{{x.request->base.kms_id, f.count}});
                        auto rnd = kms::recorded_random(*x.request, *x.response);
                        Bytes script;
                        if (x.response->version.major >= 5) script.insert(script.end(), rnd.s.begin(), rnd.s.end());
                        if (x.response->version.major == 6) script.insert(script.end(), rnd.iv.begin(), rnd.iv.end());
                        rng.set(std::move(script));
                    }
                }
                ours.feed(Direction::ToServer, p.time, p.bytes);
                auto o = sc.on_bytes(p.bytes, clock, rng);
                ours.feed(Direction::ToClient, p.time, o.bytes);
                if (o.close) {
                    closed = true;
                    break;
                }
            }
            ours.finish(clock.now(), closed ? EndReason::Closed : EndReason::EndOfCapture);
            std::vector<Exchange> mine;
            for (auto& ev : ours.take_events())
                if (auto* x = std::get_if<Exchange>(&ev)) mine.push_back(std::move(*x));
            std::unordered_map<std::uint32_t, const Exchange*> our_call;  // the last answer per call id
            for (const auto& x : mine)
                if (x.outcome != Outcome::Orphan) our_call[x.call_id] = &x;

            const std::string where = path + " stream " + std::to_string(conn.stream) + " " + conn.client.to_string() +
                                      " -> " + conn.server.to_string();
            for (const auto& r : recorded) {
                if (r.outcome == Outcome::Orphan) continue;
                ++sum.exchanges;
                auto found = our_call.find(r.call_id);
                const Exchange* m = found == our_call.end() ? nullptr : found->second;
                std::vector<std::string> diffs;
                std::string status;
                auto field = [&](const char* name, const std::string& a, const std::string& b) {
                    if (a != b) diffs.push_back(std::string(name) + ": recorded " + a + ", ours " + b);
                };
                if (r.outcome == Outcome::Response && r.response && !r.verdict.ok()) {
                    status = "TAMPERED (recorded exchange fails verification: " + failed_checks(r.verdict) + ")";
                    ++sum.tampered;
                } else if (r.outcome == Outcome::NoResponse) {
                    status = "skipped (no recorded answer; ours: " + (m ? verdict_text(*m) : "none") + ")";
                    ++sum.skipped;
                } else if (!m) {
                    status = "MISMATCH";
                    diffs.push_back("our server did not answer call " + std::to_string(r.call_id));
                } else if (r.outcome != m->outcome) {
                    status = "MISMATCH";
                    field("outcome", verdict_text(r), verdict_text(*m));
                } else if (r.outcome == Outcome::Hresult) {
                    field("hresult", hex32(r.hresult.value_or(0)), hex32(m->hresult.value_or(0)));
                } else if (r.outcome == Outcome::Fault) {
                    field("fault", hex32(r.fault_status.value_or(0)), hex32(m->fault_status.value_or(0)));
                } else if (r.response && m->response) {
                    if (!m->verdict.ok())
                        diffs.push_back("our response fails verification: " + failed_checks(m->verdict));
                    const auto &a = *r.response, &b = *m->response;
                    field("version", a.version.to_string(), b.version.to_string());
                    field("epid", a.base.epid, b.base.epid);
                    field("hwid", a.hwid ? a.hwid->to_string() : "-", b.hwid ? b.hwid->to_string() : "-");
                    field("count", std::to_string(a.base.count), std::to_string(b.base.count));
                    field("activation_interval", std::to_string(a.base.activation_interval),
                          std::to_string(b.base.activation_interval));
                    field("renewal_interval", std::to_string(a.base.renewal_interval),
                          std::to_string(b.base.renewal_interval));
                    field("cmid", a.base.cmid.to_string(), b.base.cmid.to_string());
                    field("client_time", a.base.client_time.to_iso8601(), b.base.client_time.to_iso8601());
                }
                if (status.empty()) status = diffs.empty() ? "match" : "MISMATCH";
                if (status == "match") {
                    ++sum.matched;
                    if (r.outcome == Outcome::Response && m && r.response_message == m->response_message)
                        status += " (identical message bytes)";
                } else if (status == "MISMATCH") {
                    ++sum.mismatched;
                }
                if (json) {
                    // The shared JSON vocabulary (docs/json.md): kind, ts, file, stream, version as "6.0".
                    nlohmann::json j;
                    j["kind"] = "check";
                    const auto t = r.request_time ? r.request_time : r.response_time;
                    j["ts"] = t ? nlohmann::json(t->to_iso8601()) : nullptr;
                    j["file"] = path;
                    j["stream"] = conn.stream;
                    j["call_id"] = r.call_id;
                    j["version"] = r.request_version ? nlohmann::json(r.request_version->to_string()) : nullptr;
                    j["recorded"] = verdict_text(r);
                    j["ours"] = m ? verdict_text(*m) : "none";
                    j["status"] = status;
                    j["diffs"] = diffs;
                    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
                } else {
                    const std::string version = r.request_version ? "v" + r.request_version->to_string() : "v?";
                    out << where << " call " << r.call_id << " " << version << ": " << verdict_text(r) << ": " << status
                        << "\n";
                    for (const auto& d : diffs) out << "    " << d << "\n";
                }
            }
        }
        if (conns.empty() && cap.error.empty()) {
            err << "kms-replay check: " << path << ": no DCE/RPC connection found\n";
            ++sum.errors;
        }
    }
    if (!json)
        out << "check: " << sum.exchanges << " exchanges, " << sum.matched << " match, " << sum.mismatched
            << " mismatch, " << sum.tampered << " tampered, " << sum.skipped << " without a recorded answer\n";
    return sum;
}

}  // namespace kmscope::replay
