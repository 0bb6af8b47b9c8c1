#include "serve.hpp"

#include <fcntl.h>
#include <glib-unix.h>
#include <glib.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "activation_log.hpp"
#include "cmid_store.hpp"
#include "identity.hpp"
#include "kmscope/counting.hpp"
#include "kmscope/server.hpp"
#include "recorded.hpp"
#include "recorded_server.hpp"
#include "serve_path.hpp"
#include "util.hpp"

namespace kmscope::replay {

namespace {

class Server;
struct Worker;

struct Conn {
    int fd = -1;
    SockAddr peer;
    std::string peer_text;
    std::unique_ptr<server::ServerConnection> sc;
    Bytes out;
    std::size_t out_pos = 0;
    std::uint32_t events = 0;       // the epoll events currently asked for
    std::int64_t deadline_ns = 0;   // idle deadline: last complete PDU (or accept) + idle timeout
    std::int64_t accepted_ns = 0;   // for max-connection-age
    bool closing = false;           // close once `out` is flushed
    bool held = false;              // answers wait for their batch to be durable; nothing is read meanwhile
    std::size_t unsynced_from = 0;  // while held: where in `out` the answers waiting for the sync start
    std::uint64_t serial = 0;       // tells this connection from a later one on the same descriptor
    Worker* worker = nullptr;
};

/// Answers of one round of the event loop waiting for the store: released when the ticket is durable,
/// withdrawn when it is lost. Connections are named by descriptor and serial: one may close meanwhile.
struct HeldBatch {
    BatchTicket ticket;
    std::vector<std::pair<int, std::uint64_t>> conns;
};

struct Worker {
    Server* srv = nullptr;
    GMainContext* ctx = nullptr;
    GMainLoop* loop = nullptr;
    std::thread thread;
    SystemRandom rng;
    std::map<int, std::unique_ptr<Conn>> conns;
    std::vector<GSource*> sources;                    // timers and the epoll source
    std::vector<GSource*> listen_sources;             // one per listening socket; removed while accept is paused
    GSource* resume = nullptr;                        // the timer that resumes accepting, while paused
    std::vector<std::pair<int, std::uint64_t>> held;  // this round's connections whose answers wait
    std::deque<HeldBatch> waiting;                    // earlier rounds', oldest first, until durable
    std::uint64_t serials = 0;
    int epfd = -1;    // connections are multiplexed with epoll inside one GLib source
    int wakefd = -1;  // an eventfd in epfd: the store's sync thread finished a sync

    void listen();
    void pause_accept(int err);
    void end_batch(std::uint64_t mark);
    void release_durable();

    void on_accept(int lfd);
    void on_io(Conn* c, std::uint32_t events);
    void poll_connections();
    void read_some(Conn* c);
    void flush(Conn* c);
    void update_events(Conn* c);
    void close_conn(Conn* c, const std::string& why);
    void sweep();
};

class Server {
public:
    Server(const ServeOptions& o, ReloadOptions r) : opts(o), reload_options(std::move(r)) {}
    int run();

    ServeOptions opts;
    ReloadOptions reload_options;
    // Workers hold it shared while they touch connections (and so ctx, allow, opts); a reload holds it
    // exclusively while it swaps the configuration in.
    std::shared_mutex mu;
    server::ServerContext ctx;
    std::unique_ptr<SqliteCmidStore> db;
    std::unique_ptr<ActivationLog> log;
    std::unique_ptr<ServePath> path;  // what happens to a connection's bytes, sockets excepted
    std::vector<Cidr> allow;
    std::vector<int> listeners;
    std::vector<std::unique_ptr<Worker>> workers;
    std::atomic<std::uint32_t> connections{0};
    std::atomic<bool> stopping{false};
    SystemClock clock;
    std::int64_t idle_ns = 0;
    std::int64_t max_age_ns = 0;  // 0: unlimited
    std::uint32_t fd_cap = 0;     // max-connections the descriptor limit allows (0: no cap)
    std::mutex accept_log_mu;     // EMFILE lines: at most one per kAcceptLogEvery
    std::int64_t accept_logged_ns = 0;
    std::uint64_t accept_suppressed = 0;
    std::int64_t stats_logged_ns = 0;

    bool setup();
    bool open_listeners();
    /// Validates `o` and builds what it configures into `c` (identity, policy, counts) and `nets`;
    /// false with the reasons in `errors`; `notes` are warnings and identity events.
    bool configure(const ServeOptions& o, server::ServerContext& c, std::vector<Cidr>& nets,
                   std::vector<std::string>& errors, std::vector<std::string>& notes);
    void reload();
    void notify(const std::string& state);
    std::string status_line() const;
    void log_stats_error(const std::string& what);
    /// Opens the database (genuine counts, statistics) and routes its events to the log.
    void open_db();
    /// Lowers `o.max_connections` to what the descriptor limit allows; the warning, or "".
    std::string cap_connections(ServeOptions& o) const;
};

constexpr std::int64_t kAcceptPauseMs = 100;
constexpr std::int64_t kAcceptLogEvery = 10'000'000'000;  // ns
constexpr std::uint64_t kLowDiskBytes = 64ull << 20;
constexpr std::uint32_t kReservedFds = 32;  // listeners, log, SQLite's files, stdio, signals

// One GLib source per worker watches its epoll descriptor. Adding and removing a GLib poll record per
// connection would wake the main context up (an eventfd write) several times per connection.
gboolean epoll_cb(gint, GIOCondition, gpointer data) {
    auto* w = static_cast<Worker*>(data);
    std::shared_lock lock(w->srv->mu);
    w->poll_connections();
    return G_SOURCE_CONTINUE;
}

gboolean listen_cb(gint fd, GIOCondition, gpointer data) {
    auto* w = static_cast<Worker*>(data);
    std::shared_lock lock(w->srv->mu);
    w->on_accept(fd);
    return G_SOURCE_CONTINUE;
}

gboolean resume_cb(gpointer data) {
    auto* w = static_cast<Worker*>(data);
    w->resume = nullptr;
    w->listen();
    return G_SOURCE_REMOVE;
}

gboolean sweep_cb(gpointer data) {
    auto* w = static_cast<Worker*>(data);
    std::shared_lock lock(w->srv->mu);
    w->sweep();
    return G_SOURCE_CONTINUE;
}

Server* g_server = nullptr;

gboolean signal_cb(gpointer) {
    if (g_server && !g_server->stopping.exchange(true)) {
        g_server->notify("STOPPING=1\nSTATUS=Stopping on signal");
        for (auto& w : g_server->workers) g_main_loop_quit(w->loop);
    }
    return G_SOURCE_CONTINUE;
}

gboolean hangup_cb(gpointer) {
    if (g_server && !g_server->stopping.load()) g_server->reload();
    return G_SOURCE_CONTINUE;
}

/// Detaches from the terminal: fork, setsid, fork again (the daemon can never reacquire a controlling
/// terminal), standard streams to /dev/null. The original process waits until the daemon reports its
/// start-up result on a pipe and exits with it, so that scripts see failures and find the pid file
/// written. Returns the pipe's write end in the daemon, or -1 (with errno) in the original process.
int daemonize() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid > 0) {
        ::close(p[1]);
        unsigned char code = 2;
        ssize_t n;
        do n = ::read(p[0], &code, 1);
        while (n < 0 && errno == EINTR);
        waitpid(pid, nullptr, 0);
        _exit(n == 1 ? code : 2);
    }
    ::close(p[0]);
    if (setsid() < 0) _exit(2);
    pid = fork();
    if (pid < 0) _exit(2);
    if (pid > 0) _exit(0);
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        for (int fd : {0, 1, 2}) dup2(null, fd);
        if (null > 2) ::close(null);
    }
    return p[1];
}

void report_start(int& fd, unsigned char code) {
    if (fd < 0) return;
    ssize_t n;
    do n = ::write(fd, &code, 1);
    while (n < 0 && errno == EINTR);
    ::close(fd);
    fd = -1;
}

void Worker::on_accept(int lfd) {
    for (int i = 0; i < 64; ++i) {
        SockAddr peer;
        peer.len = sizeof(peer.ss);
        int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&peer.ss), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
            if (errno == EMFILE || errno == ENFILE) {
                // The socket stays readable: retrying at once would spin. Stop watching the listeners
                // for a moment; the connections wait in the kernel's queue.
                pause_accept(errno);
                return;
            }
            srv->log->event("-", std::string("accept: ") + std::strerror(errno));
            return;
        }
        std::string who = peer.to_string();
        if (!srv->allow.empty()) {
            bool ok = false;
            for (const auto& c : srv->allow) ok = ok || c.contains(peer);
            if (!ok) {
                srv->log->event(who, "refused: not in the allow-list");
                ::close(fd);
                continue;
            }
        }
        if (srv->connections.load() >= srv->opts.max_connections) {
            srv->log->event(
                who, "refused: " + std::to_string(srv->opts.max_connections) + " connections open (max-connections)");
            ::close(fd);
            continue;
        }
        ++srv->connections;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        SockAddr local;
        local.len = sizeof(local.ss);
        getsockname(fd, reinterpret_cast<sockaddr*>(&local.ss), &local.len);
        auto c = std::make_unique<Conn>();
        c->fd = fd;
        c->peer = peer;
        c->peer_text = std::move(who);
        std::uint32_t group = 0;
        while (group == 0) group = rng.u32();
        c->sc = std::make_unique<server::ServerConnection>(srv->ctx, group, local.port());
        c->accepted_ns = mono_ns();
        c->deadline_ns = c->accepted_ns + srv->idle_ns;
        c->worker = this;
        c->serial = ++serials;
        c->events = EPOLLIN;
        epoll_event ev{};
        ev.events = c->events;
        ev.data.ptr = c.get();
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            srv->log->event(c->peer_text, std::string("refused: epoll_ctl: ") + std::strerror(errno));
            ::close(fd);
            --srv->connections;
            continue;
        }
        conns[fd] = std::move(c);
    }
}

void Worker::listen() {
    for (int fd : srv->listeners) {
        GSource* s = g_unix_fd_source_new(fd, G_IO_IN);
        g_source_set_callback(s, reinterpret_cast<GSourceFunc>(reinterpret_cast<void (*)()>(listen_cb)), this, nullptr);
        g_source_attach(s, ctx);
        listen_sources.push_back(s);
    }
}

void Worker::pause_accept(int err) {
    for (GSource* s : listen_sources) {
        g_source_destroy(s);
        g_source_unref(s);
    }
    listen_sources.clear();
    if (!resume) {
        resume = g_timeout_source_new(kAcceptPauseMs);
        g_source_set_callback(resume, resume_cb, this, nullptr);
        g_source_attach(resume, ctx);
        g_source_unref(resume);  // the context keeps it until it fires or is destroyed
    }
    std::lock_guard lock(srv->accept_log_mu);
    std::int64_t now = mono_ns();
    if (srv->accept_logged_ns && now - srv->accept_logged_ns < kAcceptLogEvery) {
        ++srv->accept_suppressed;
        return;
    }
    std::string line = std::string("accept: ") + std::strerror(err) + " (" + std::to_string(srv->connections.load()) +
                       " connections open); not accepting for " + std::to_string(kAcceptPauseMs) +
                       " ms at a time, new connections wait in the queue";
    if (srv->accept_suppressed)
        line += "; " + std::to_string(srv->accept_suppressed) + " more pauses since the last such line";
    srv->log->event("-", line);
    srv->accept_logged_ns = now;
    srv->accept_suppressed = 0;
}

void Worker::end_batch(std::uint64_t mark) {
    if (!srv->db) return;
    // One commit for every write of the round (and its statistics), even when no answer waits: a
    // request whose answer was never produced must not leave the transaction open.
    BatchTicket ticket = srv->path->end_batch(mark);
    if (!held.empty()) waiting.push_back(HeldBatch{ticket, std::move(held)});
    held.clear();
    release_durable();
    // Answers that still wait (a sync is running): their connections are not read meanwhile. Only
    // now, so that a batch released at once (--db-sync normal) costs no epoll_ctl.
    if (!waiting.empty())
        for (auto [fd, serial] : waiting.back().conns)
            if (auto it = conns.find(fd); it != conns.end() && it->second->serial == serial)
                update_events(it->second.get());
}

void Worker::release_durable() {
    while (!waiting.empty()) {
        BatchOutcome o = srv->path->outcome(waiting.front().ticket);
        if (o.state == BatchOutcome::Pending) return;  // later rounds end later: they wait too
        auto batch = std::move(waiting.front());
        waiting.pop_front();
        for (auto [fd, serial] : batch.conns) {
            auto it = conns.find(fd);
            if (it == conns.end() || it->second->serial != serial) continue;  // closed meanwhile
            Conn* c = it->second.get();
            c->held = false;
            // Not durable, so not acknowledged: each KMS response of the batch becomes an error answer
            // (the client retries later) instead of a silent close.
            if (o.state == BatchOutcome::Lost)
                srv->path->withdraw(*c->sc, c->peer_text, c->out, c->unsynced_from, o.why);
            flush(c);
        }
    }
}

void Worker::update_events(Conn* c) {
    bool pending = c->out_pos < c->out.size();
    std::uint32_t ev = 0;  // EPOLLHUP and EPOLLERR are always reported
    if (c->held)
        ;  // neither sent nor read until its batch is durable: one batch per connection at a time
    else if (pending)
        ev |= EPOLLOUT;
    else if (!c->closing)
        ev |= EPOLLIN;  // back-pressure: no reading while answers wait
    if (ev == c->events) return;
    c->events = ev;
    epoll_event e{};
    e.events = ev;
    e.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

void Worker::close_conn(Conn* c, const std::string& why) {
    if (!why.empty()) srv->log->event(c->peer_text, "closed: " + why);
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
    ::close(c->fd);
    --srv->connections;
    conns.erase(c->fd);  // destroys c
}

void Worker::flush(Conn* c) {
    while (c->out_pos < c->out.size()) {
        ssize_t n = ::send(c->fd, c->out.data() + c->out_pos, c->out.size() - c->out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0 && errno == EINTR) continue;
        close_conn(c, std::string("send failed: ") + std::strerror(errno) + " (" +
                          std::to_string(c->out.size() - c->out_pos) + " answer bytes not delivered)");
        return;
    }
    if (c->out_pos == c->out.size()) {
        if (c->out.capacity() > 16384)
            Bytes().swap(c->out);  // a keep-alive connection does not pin a burst's buffer
        else
            c->out.clear();
        c->out_pos = 0;
        if (c->closing) {
            close_conn(c, "");
            return;
        }
    }
    update_events(c);
}

void Worker::read_some(Conn* c) {
    const std::size_t batch_start = c->out.size();
    bool stored = false;
    std::uint8_t buf[16384];
    for (int round = 0; round < 4; ++round) {
        ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            close_conn(c, std::string("receive failed: ") + std::strerror(errno));
            return;
        }
        if (n == 0) {
            // The client is done sending (closed or half-closed): deliver what is owed, then close.
            if (c->sc->partial())
                srv->log->event(c->peer_text, "client closed in the middle of a PDU; nothing to answer");
            c->closing = true;
            break;
        }
        auto got = srv->path->receive(*c->sc, c->peer_text, ByteView(buf, static_cast<std::size_t>(n)), c->out,
                                      srv->clock, rng);
        stored = stored || got.stored;
        if (!got.failure.empty()) {
            close_conn(c, got.failure);
            return;
        }
        if (got.answered) c->deadline_ns = mono_ns() + srv->idle_ns;
        if (got.close) {
            c->closing = true;
            break;
        }
        if (static_cast<std::size_t>(n) < sizeof buf) break;
        if (c->out.size() > (1u << 20)) break;
    }
    // Acknowledged CMIDs must be durable before the answers leave: they wait for the commit of this
    // round's transaction and, with --db-sync full, for the sync that covers it (group commit). Other
    // answers (binds, faults) do not wait.
    if (stored) {
        c->held = true;
        c->unsynced_from = batch_start;
        held.emplace_back(c->fd, c->serial);
        return;
    }
    flush(c);
}

void Worker::poll_connections() {
    epoll_event events[256];
    const std::uint64_t mark = srv->path->mark();
    int n = epoll_wait(epfd, events, 256, 0);
    // Each connection appears at most once per batch, and handling one closes at most that one.
    for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr) {  // the wake-up of the store's sync thread
            std::uint64_t count;
            while (::read(wakefd, &count, sizeof count) < 0 && errno == EINTR) {
            }
            continue;
        }
        on_io(static_cast<Conn*>(events[i].data.ptr), events[i].events);
    }
    end_batch(mark);
}

void Worker::on_io(Conn* c, std::uint32_t cond) {
    if (c->held) {
        // Only EPOLLERR or EPOLLHUP are asked for while its answers wait: the client is gone.
        close_conn(
            c, "client went away before " + std::to_string(c->out.size() - c->out_pos) + " answer bytes could be sent");
        return;
    }
    if (cond & EPOLLOUT) {
        flush(c);
        return;
    }
    if (cond & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->closing) {  // HUP/ERR while closing: the client is gone
            std::size_t unsent = c->out.size() - c->out_pos;
            close_conn(
                c, unsent ? "client went away before " + std::to_string(unsent) + " answer bytes could be sent" : "");
            return;
        }
        read_some(c);
    }
}

void Worker::sweep() {
    std::int64_t now = mono_ns();
    std::vector<Conn*> late;
    std::vector<Conn*> old;
    for (auto& [fd, c] : conns) {
        if (now >= c->deadline_ns) {
            late.push_back(c.get());
        } else if (srv->max_age_ns && now - c->accepted_ns >= srv->max_age_ns && !c->sc->partial() && !c->closing &&
                   !c->held) {
            // Between PDUs only, and not while answers wait for the database sync: a request being
            // received is answered first (the idle timeout still bounds a client that stops half-way).
            old.push_back(c.get());
        }
    }
    for (Conn* c : old) {
        char age[32];
        std::snprintf(age, sizeof age, "%g", static_cast<double>(srv->max_age_ns) / 1e9);
        srv->log->event(c->peer_text, std::string("closing: connection older than ") + age + " s (max-connection-age)");
        c->closing = true;
        flush(c);
    }
    for (Conn* c : late) {
        std::string why = "idle timeout";
        if (c->sc->partial()) why += " with a partial PDU";
        if (c->out_pos < c->out.size()) why += " while the client did not read its answers";
        close_conn(c, why);
    }
}

void Server::log_stats_error(const std::string& what) {
    // Once per kAcceptLogEvery at most: a full disk would otherwise add a line per request.
    std::lock_guard lock(accept_log_mu);
    std::int64_t now = mono_ns();
    if (stats_logged_ns && now - stats_logged_ns < kAcceptLogEvery) return;
    stats_logged_ns = now;
    log->event("-", "statistics not recorded yet (kept in memory, retried): " + what);
}

bool Server::open_listeners() {
    std::vector<std::string> texts = opts.listen;
    if (texts.empty()) texts.push_back("[::]");
    for (const auto& text : texts) {
        std::string err;
        auto addrs = resolve_listen(text, opts.port, err);
        if (addrs.empty()) {
            std::cerr << "kms-replay: --listen " << err << "\n";
            return false;
        }
        for (const auto& a : addrs) {
            int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                std::cerr << "kms-replay: socket: " << std::strerror(errno) << "\n";
                return false;
            }
            int one = 1, zero = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (a.ss.ss_family == AF_INET6) {
                // "[::]" is dual stack; a specific IPv6 address is IPv6 only.
                const auto& in6 = reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr;
                int v6only = IN6_IS_ADDR_UNSPECIFIED(&in6) ? zero : one;
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
            }
            if (bind(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0 || listen(fd, 4096) != 0) {
                std::cerr << "kms-replay: cannot listen on " << a.to_string() << " (" << text
                          << "): " << std::strerror(errno) << "\n";
                ::close(fd);
                return false;
            }
            SockAddr bound;
            bound.len = sizeof bound.ss;
            getsockname(fd, reinterpret_cast<sockaddr*>(&bound.ss), &bound.len);
            std::cerr << "kms-replay: listening on " << bound.to_string() << "\n";
            listeners.push_back(fd);
        }
    }
    return true;
}

bool Server::configure(const ServeOptions& o, server::ServerContext& cx, std::vector<Cidr>& nets,
                       std::vector<std::string>& errors, std::vector<std::string>& notes) {
    errors = validate(o);
    if (!errors.empty()) return false;
    if (o.count_policy == "genuine" && !db) {
        errors.push_back("count-policy genuine needs the database, which is opened at start: restart");
        return false;
    }
    nets.clear();
    for (const auto& a : o.allow) nets.push_back(*Cidr::parse(a));
    auto& c = cx.config;
    c = server::ServerConfig{};
    c.ndr64 = o.ndr64;
    c.btfn = o.btfn;
    c.host_build = o.host_build;
    c.lcid = o.lcid;
    c.activation_interval = o.activation_interval;
    c.renewal_interval = o.renewal_interval;
    c.max_n_policy = o.max_n_policy;
    if (o.max_time_skew > 0) c.max_time_skew_seconds = o.max_time_skew;
    c.strict_opnum = o.strict_opnum;
    c.max_requests_per_connection = o.max_requests_per_connection;
    c.max_binds_per_connection = o.max_binds_per_connection;
    c.limits.max_pdu_size = o.max_pdu_size;

    // The identity: the installation's own (state directory), under what the options fix explicitly.
    // --from replaces it with the recorded server's and leaves the state directory alone.
    SystemRandom rng;
    StoredIdentity base;
    bool need_state = false;  // some part of the identity is not given explicitly
    for (const auto& fam : csvlk_families()) {
        std::string name(fam.name);
        need_state = need_state || !o.epid.count(name) || (o.hwid.empty() && !o.family_hwid.count(name));
    }
    if (!o.from.empty()) {
        base = generate_identity(o.host_build, o.lcid, clock.now(), rng);
    } else if (need_state) {
        std::string dir = o.state_dir.empty() ? default_state_dir() : o.state_dir, note, err;
        auto stored = load_or_create_identity(dir, o.host_build, o.lcid, clock.now(), rng, note, err);
        if (!stored) {
            errors.push_back("identity: " + err + " (give --state-dir, or --hwid and --epid for every family)");
            return false;
        }
        if (!note.empty()) notes.push_back("identity: " + note);
        base = std::move(*stored);
    } else {
        base = generate_identity(o.host_build, o.lcid, clock.now(), rng);  // every part overridden below
    }
    c.hwid = o.hwid.empty() ? base.hwid : *HwId::parse(o.hwid);
    for (const auto& fam : csvlk_families()) {
        std::string name(fam.name);
        server::FamilyIdentity id{base.epids[name], c.hwid};
        if (auto e = o.epid.find(name); e != o.epid.end()) id.epid = e->second;
        if (auto h = o.family_hwid.find(name); h != o.family_hwid.end()) id.hwid = *HwId::parse(h->second);
        c.identities[name] = id;
    }
    cx.identity = server::HostIdentity::create(c, clock.now(), rng);  // every family configured: a copy

    if (o.count_policy == "genuine")
        cx.counts = std::make_shared<GenuineCountPolicy>(*db);
    else
        cx.counts = std::make_shared<server::FixedCountPolicy>(o.fixed_count);
    if (!o.from.empty()) {
        try {
            auto rec = learn_server(capture::read_connections(o.from));
            if (rec.responses == 0 && !rec.ndr64 && !rec.btfn) {
                errors.push_back("--from " + o.from + ": no answer of the server recorded");
                return false;
            }
            if (rec.responses == 0)
                notes.push_back("--from " + o.from +
                                ": no KMS response recorded; only the RPC choices (NDR64, BTFN) are taken");
            auto keep = cx.counts;
            for (const auto& note : apply_recorded(rec, cx)) notes.push_back("--from: " + note);
            if (o.count_policy == "genuine") {
                cx.counts = keep;
                notes.push_back("--from: count-policy genuine replaces the recorded counts");
            }
        } catch (const std::exception& e) {
            errors.push_back("--from: " + std::string(e.what()));
            return false;
        }
    }
    for (const auto& p : c.validate()) notes.push_back("warning: " + p);
    return true;
}

void Server::open_db() {
    db = std::make_unique<SqliteCmidStore>(opts.db, opts.db_sync == "full" ? SyncMode::Full : SyncMode::Normal);
    // The log exists once setup() is done; until then the store's events go to standard error.
    db->on_event([this](const std::string& line) {
        if (log)
            log->event("-", line);
        else
            std::cerr << "kms-replay: " << line << "\n";
    });
}

std::string Server::cap_connections(ServeOptions& o) const {
    if (!fd_cap || o.max_connections <= fd_cap) return "";
    std::string line = "the descriptor limit (ulimit -n) allows " + std::to_string(fd_cap) +
                       " connections: max-connections lowered from " + std::to_string(o.max_connections) + " to " +
                       std::to_string(fd_cap) + " (raise LimitNOFILE= or the hard limit)";
    o.max_connections = fd_cap;
    return line;
}

bool Server::setup() {
    if (auto problems = validate(opts); !problems.empty()) {
        for (const auto& p : problems) std::cerr << "kms-replay: " << p << "\n";
        return false;
    }
    try {
        if (!opts.db.empty()) {
            open_db();
            FileTime now = clock.now();
            db->expire(FileTime{now.ticks > kCmidLifetimeTicks ? now.ticks - kCmidLifetimeTicks : 0});
            // A full disk refuses requests (with an error answer): say so before it happens.
            auto slash = opts.db.rfind('/');
            std::string dir = slash == std::string::npos ? "." : opts.db.substr(0, slash + 1);
            struct statvfs fs {};
            if (statvfs(dir.c_str(), &fs) == 0) {
                auto free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
                if (free_bytes < kLowDiskBytes)
                    std::cerr << "kms-replay: warning: only " << free_bytes / 1024 << " KiB free for the database "
                              << opts.db << "; when the disk is full, requests are refused with an error answer\n";
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "kms-replay: " << e.what() << "\n";
        return false;
    }
    std::vector<std::string> errors, notes;
    bool ok = configure(opts, ctx, allow, errors, notes);
    for (const auto& p : errors) std::cerr << "kms-replay: " << p << "\n";
    for (const auto& n : notes) std::cerr << "kms-replay: " << n << "\n";
    if (!ok) return false;
    idle_ns = static_cast<std::int64_t>(opts.idle_timeout * 1e9);
    max_age_ns = static_cast<std::int64_t>(opts.max_connection_age * 1e9);
    try {
        log = std::make_unique<ActivationLog>(opts.log_file, opts.log_format == "json", opts.quiet);
    } catch (const std::exception& e) {
        std::cerr << "kms-replay: " << e.what() << "\n";
        return false;
    }
    return true;
}

void Server::notify(const std::string& state) {
    // A no-op without NOTIFY_SOCKET (not started by systemd as Type=notify).
    sd_notify(0, state.c_str());
}

std::string Server::status_line() const {
    std::string s = "STATUS=Serving on ";
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        SockAddr bound;
        bound.len = sizeof bound.ss;
        getsockname(listeners[i], reinterpret_cast<sockaddr*>(&bound.ss), &bound.len);
        if (i) s += ", ";
        s += bound.to_string();
    }
    const auto* win = ctx.identity.family("Windows");
    s += "; HwId ";
    s += ctx.config.hwid.to_string();
    if (win) {
        s += ", Windows ePID ";
        s += win->epid;
    }
    return s;
}

void Server::reload() {
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(mono_ns() / 1000) + "\nSTATUS=Reloading");
    ServeOptions next = opts;
    std::string err = reload_options ? reload_options(next) : "";
    // The log first, whatever the configuration says: logrotate has renamed the file.
    const ServeOptions& for_log = err.empty() ? next : opts;
    if (auto e = log->reopen(for_log.log_file, for_log.log_format == "json", for_log.quiet); !e.empty())
        log->event("-", "reload: " + e + "; still logging to the previous file");
    if (!err.empty()) {
        log->event("-", "reload: " + err + "; the previous configuration stays");
        std::cerr << "kms-replay: reload: " << err << "\n";
        notify("READY=1\n" + status_line());
        return;
    }
    // Options a reload cannot apply keep their running values (and say so).
    for (const auto& name : keep_restart_only(opts, next))
        log->event("-", "reload: " + name + " changed; it takes effect at the next restart");
    if (auto warning = cap_connections(next); !warning.empty()) log->event("-", "reload: warning: " + warning);
    server::ServerContext fresh;
    std::vector<Cidr> nets;
    std::vector<std::string> errors, notes;
    bool ok = configure(next, fresh, nets, errors, notes);
    for (const auto& n : notes) log->event("-", "reload: " + n);
    if (!ok) {
        for (const auto& e : errors) log->event("-", "reload: " + e + "; the previous configuration stays");
        notify("READY=1\n" + status_line());
        return;
    }
    {
        std::unique_lock lock(mu);
        ctx.config = std::move(fresh.config);
        ctx.identity = std::move(fresh.identity);
        ctx.counts = std::move(fresh.counts);
        allow = std::move(nets);
        idle_ns = static_cast<std::int64_t>(next.idle_timeout * 1e9);
        max_age_ns = static_cast<std::int64_t>(next.max_connection_age * 1e9);
        opts = std::move(next);
    }
    log->event("-", "reload: configuration applied (HwId " + ctx.config.hwid.to_string() + ")");
    notify("READY=1\n" + status_line());
}

int Server::run() {
    if (!setup()) return 2;
    {
        // Each connection is a descriptor: beyond the limit accept fails with EMFILE. Raise the soft
        // limit (up to the hard one), else serve fewer connections than asked, and say so.
        std::uint64_t want = static_cast<std::uint64_t>(opts.max_connections) + 256;
        std::uint64_t have = raise_nofile(want);
        std::uint64_t reserve = kReservedFds + 4ull * opts.threads;
        if (have && have < want)
            fd_cap = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, have > reserve ? have - reserve : 1));
        if (auto warning = cap_connections(opts); !warning.empty()) {
            std::cerr << "kms-replay: warning: " << warning << "\n";
            log->event("-", "warning: " + warning);
        }
    }
    if (!open_listeners()) return 2;
    int started_fd = -1;  // the daemon's pipe to the waiting original process
    if (opts.daemon) {
        if (opts.log_file.empty())
            std::cerr << "kms-replay: running in the background without --log-file: the activation log is lost\n";
        // SQLite connections must not cross fork(): close the store (opened above to report errors while
        // the terminal is still attached) and open it again in the detached process.
        if (opts.count_policy == "genuine") ctx.counts.reset();  // it refers to the store
        db.reset();
        started_fd = daemonize();
        if (started_fd < 0) {
            std::cerr << "kms-replay: cannot detach: " << std::strerror(errno) << "\n";
            return 2;
        }
        try {
            if (!opts.db.empty()) open_db();
            if (opts.count_policy == "genuine") ctx.counts = std::make_shared<GenuineCountPolicy>(*db);
        } catch (const std::exception& e) {
            log->event("-", std::string("cannot open the database after detaching: ") + e.what());
            report_start(started_fd, 2);
            return 2;
        }
    }
    path = std::make_unique<ServePath>(ctx, *log, db.get(), [this](const std::string& e) { log_stats_error(e); });
    if (!opts.pid_file.empty()) std::ofstream(opts.pid_file) << getpid() << "\n";
    for (unsigned i = 0; i < opts.threads; ++i) {
        auto w = std::make_unique<Worker>();
        w->srv = this;
        w->ctx = g_main_context_new();
        w->loop = g_main_loop_new(w->ctx, FALSE);
        w->listen();
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        epoll_event wake{};
        wake.events = EPOLLIN;
        wake.data.ptr = nullptr;
        if (w->epfd < 0 || w->wakefd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &wake) != 0) {
            std::cerr << "kms-replay: epoll: " << std::strerror(errno) << "\n";
            report_start(started_fd, 2);
            return 2;
        }
        GSource* ep = g_unix_fd_source_new(w->epfd, G_IO_IN);
        g_source_set_callback(ep, reinterpret_cast<GSourceFunc>(reinterpret_cast<void (*)()>(epoll_cb)), w.get(),
                              nullptr);
        g_source_attach(ep, w->ctx);
        w->sources.push_back(ep);
        GSource* t = g_timeout_source_new(100);
        g_source_set_callback(t, sweep_cb, w.get(), nullptr);
        g_source_attach(t, w->ctx);
        w->sources.push_back(t);
        workers.push_back(std::move(w));
    }
    if (db) {
        // After each sync of the store, every worker looks at its waiting answers.
        db->on_synced([this] {
            const std::uint64_t one = 1;
            for (auto& w : workers) (void)!::write(w->wakefd, &one, sizeof one);
        });
    }
    g_server = this;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
        GSource* s = g_unix_signal_source_new(sig);
        g_source_set_callback(s, sig == SIGHUP ? hangup_cb : signal_cb, nullptr, nullptr);
        g_source_attach(s, workers[0]->ctx);
        workers[0]->sources.push_back(s);
    }
    if (!opts.ready_file.empty()) {
        std::string tmp = opts.ready_file + ".tmp";
        {
            std::ofstream f(tmp);
            for (int fd : listeners) {
                SockAddr bound;
                bound.len = sizeof bound.ss;
                getsockname(fd, reinterpret_cast<sockaddr*>(&bound.ss), &bound.len);
                f << bound.to_string() << "\n";
            }
        }
        std::rename(tmp.c_str(), opts.ready_file.c_str());
    }
    for (std::size_t i = 1; i < workers.size(); ++i) {
        Worker* w = workers[i].get();
        w->thread = std::thread([w] { g_main_loop_run(w->loop); });
    }
    // Ready: listening, signal handlers in place. The daemon names itself: systemd knows only its parent.
    notify((opts.daemon ? "MAINPID=" + std::to_string(getpid()) + "\n" : std::string()) + "READY=1\n" + status_line());
    report_start(started_fd, 0);
    g_main_loop_run(workers[0]->loop);
    for (auto& w : workers) g_main_loop_quit(w->loop);
    for (auto& w : workers)
        if (w->thread.joinable()) w->thread.join();
    if (db) db->on_synced(nullptr);  // before the eventfds close
    std::size_t open = 0;
    for (auto& w : workers) {
        open += w->conns.size();
        while (!w->conns.empty()) w->close_conn(w->conns.begin()->second.get(), "");
        for (auto* list : {&w->sources, &w->listen_sources})
            for (GSource* s : *list) {
                g_source_destroy(s);
                g_source_unref(s);
            }
        if (w->resume) g_source_destroy(w->resume);
        ::close(w->epfd);
        ::close(w->wakefd);
        g_main_loop_unref(w->loop);
        g_main_context_unref(w->ctx);
    }
    for (int fd : listeners) ::close(fd);
    g_server = nullptr;
    log->event("-", "shutting down on signal; " + std::to_string(open) + " open connections closed");
    if (!opts.pid_file.empty()) std::remove(opts.pid_file.c_str());
    return 0;
}

}  // namespace

int run_serve(const ServeOptions& opts, ReloadOptions reload) {
    Server s(opts, std::move(reload));
    return s.run();
}

}  // namespace kmscope::replay
