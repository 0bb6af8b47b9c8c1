// What serve does with one connection's bytes between the socket and the core, sockets excepted: the
// core answers; each activation goes to the log and the statistics; each connection event is logged
// once; answers that acknowledge counts wait for the store's sync, and become error answers when that
// sync fails. serve.cpp owns sockets, timers and epoll; fuzz/fuzz_serve_path.cpp drives this directly.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "activation_log.hpp"
#include "cmid_store.hpp"
#include "kmscope/environment.hpp"
#include "kmscope/server.hpp"

namespace kmscope::replay {

/// Shared by every connection of a server. The log and the store are thread-safe.
class ServePath {
public:
    /// `db` may be null (fixed counts, no statistics). `context` is read at each call (a reload
    /// changes it in place). `stats_error` is told when statistics could not be written (the caller
    /// rate-limits it); it must not throw.
    ServePath(const server::ServerContext& context, ActivationLog& log, SqliteCmidStore* db,
              std::function<void(const std::string&)> stats_error);

    struct Received {
        bool close = false;     // the core asked to close the connection once the answers are sent
        bool answered = false;  // something was answered or recorded: the client is not idle
        bool stored = false;    // requests went to the store: the answers wait for the batch's ticket
        std::string failure;    // an internal error: close the connection without an answer
    };
    /// Hands `bytes` from the client `who` to its ServerConnection and appends the answers to `out`.
    Received receive(server::ServerConnection& connection, const std::string& who, ByteView bytes, Bytes& out,
                     const Clock& clock, RandomSource& rng) const;
    /// Before a batch of receive() calls (one round of the event loop): where its writes will go.
    std::uint64_t mark() const { return db_ ? db_->batch_mark() : 0; }
    /// After the batch: its statistics and counts committed in one transaction (statistics failures go
    /// to `stats_error`, they never hold answers back). Answers with `stored` leave once outcome() of
    /// the ticket is Durable.
    BatchTicket end_batch(std::uint64_t mark) const;
    BatchOutcome outcome(const BatchTicket& ticket) const {
        return db_ ? db_->outcome(ticket) : BatchOutcome{BatchOutcome::Durable, ""};
    }
    /// end_batch(), then waits for the outcome: "" when durable, else why not.
    std::string end_batch_and_wait(std::uint64_t mark) const;
    /// When the ticket is lost (`why`): the KMS responses in out[from..] become error answers, one log
    /// line each (the client retries later; nothing unsaved is acknowledged).
    void withdraw(const server::ServerConnection& connection, const std::string& who, Bytes& out, std::size_t from,
                  const std::string& why) const;

private:
    void record(const std::string& who, const server::ActivationRecord& rec) const;
    const server::ServerContext& ctx_;
    ActivationLog& log_;
    SqliteCmidStore* db_;
    std::function<void(const std::string&)> stats_error_;
};

}  // namespace kmscope::replay
