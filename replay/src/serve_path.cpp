#include "serve_path.hpp"

#include <algorithm>
#include <exception>

#include "kmscope/status.hpp"

namespace kmscope::replay {

ServePath::ServePath(const server::ServerContext& context, ActivationLog& log, SqliteCmidStore* db,
                     std::function<void(const std::string&)> stats_error)
    : ctx_(context), log_(log), db_(db), stats_error_(std::move(stats_error)) {}

ServePath::Received ServePath::receive(server::ServerConnection& connection, const std::string& who, ByteView bytes,
                                       Bytes& out, const Clock& clock, RandomSource& rng) const {
    Received r;
    server::Output answer;
    try {
        // A count the store cannot take is refused by the core with an error answer
        // (server::CountUnavailable); anything else thrown is a failure of this server.
        answer = connection.on_bytes(bytes, clock, rng);
    } catch (const std::exception& e) {
        r.failure = std::string("internal error, request not answered: ") + e.what();
        return r;
    }
    for (const auto& rec : answer.activations) record(who, rec);
    for (const auto& ev : answer.events)
        // Faults and error answers are in the activation line logged above.
        if (!server::answers_request(ev.kind)) log_.event(who, server::describe(ev));
    r.answered = !answer.activations.empty() || !answer.bytes.empty();
    r.stored = db_ && !answer.activations.empty();
    r.close = answer.close;
    out.insert(out.end(), answer.bytes.begin(), answer.bytes.end());
    return r;
}

void ServePath::record(const std::string& who, const server::ActivationRecord& rec) const {
    log_.activation(who, rec, *ctx_.products);
    if (!db_) return;
    try {
        std::string kms_id = rec.request ? rec.request->kms_id.to_string() : "(none)";
        std::uint32_t license_status = rec.request ? rec.request->license_status : 0;
        std::uint32_t n_policy = rec.request ? rec.request->n_policy : 0;
        db_->record_request(kms_id, license_status, result_kind(rec), rec.count, n_policy, rec.time);
    } catch (const std::exception& e) {
        stats_error_(e.what());
    }
}

BatchTicket ServePath::end_batch(std::uint64_t mark) const {
    if (!db_) return BatchTicket{1, 0};  // nothing to wait for
    std::string stats_error;
    auto ticket = db_->end_batch(mark, stats_error);
    if (!stats_error.empty()) stats_error_(stats_error);
    return ticket;
}

std::string ServePath::end_batch_and_wait(std::uint64_t mark) const {
    auto ticket = end_batch(mark);
    return db_ ? db_->wait(ticket) : "";
}

void ServePath::withdraw(const server::ServerConnection& connection, const std::string& who, Bytes& out,
                         std::size_t from, const std::string& why) const {
    from = std::min(from, out.size());
    auto withdrawn = connection.withdraw_responses(ByteView(out).subspan(from), kHrInvalidData,
                                                   "the database could not make it durable: " + why);
    out.resize(from);
    out.insert(out.end(), withdrawn.bytes.begin(), withdrawn.bytes.end());
    for (const auto& ev : withdrawn.events) log_.event(who, server::describe(ev));
}

}  // namespace kmscope::replay
