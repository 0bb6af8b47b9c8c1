#include "serve.hpp"

#include <glib-unix.h>
#include <glib.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "activation_log.hpp"
#include "cmid_store.hpp"
#include "kmscope/counting.hpp"
#include "kmscope/server.hpp"
#include "recorded.hpp"
#include "recorded_server.hpp"
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
    std::uint32_t events = 0;      // the epoll events currently asked for
    std::int64_t deadline_ns = 0;  // idle deadline: last complete PDU (or accept) + idle timeout
    bool closing = false;          // close once `out` is flushed
    Worker* worker = nullptr;
};

struct Worker {
    Server* srv = nullptr;
    GMainContext* ctx = nullptr;
    GMainLoop* loop = nullptr;
    std::thread thread;
    SystemRandom rng;
    std::map<int, std::unique_ptr<Conn>> conns;
    std::vector<GSource*> sources;  // listeners, timers and the epoll source
    int epfd = -1;                  // connections are multiplexed with epoll inside one GLib source

    void on_accept(int lfd);
    void on_io(Conn* c, std::uint32_t events);
    void poll_connections();
    void read_some(Conn* c);
    void flush(Conn* c);
    void update_events(Conn* c);
    void close_conn(Conn* c, const std::string& why);
    void sweep();
    void log_context_refusals(const std::string& who, const Bytes& answers);
};

class Server {
public:
    explicit Server(const ServeOptions& o) : opts(o) {}
    int run();

    ServeOptions opts;
    server::ServerContext ctx;
    std::unique_ptr<SqliteCmidStore> db;
    std::unique_ptr<ActivationLog> log;
    std::vector<Cidr> allow;
    std::vector<int> listeners;
    std::vector<std::unique_ptr<Worker>> workers;
    std::atomic<std::uint32_t> connections{0};
    std::atomic<bool> stopping{false};
    SystemClock clock;
    std::int64_t idle_ns = 0;

    bool setup();
    bool open_listeners();
    void record(const std::string& client, const server::ActivationRecord& rec);
};

// One GLib source per worker watches its epoll descriptor. Adding and removing a GLib poll record per
// connection would wake the main context up (an eventfd write) several times per connection.
gboolean epoll_cb(gint, GIOCondition, gpointer data) {
    static_cast<Worker*>(data)->poll_connections();
    return G_SOURCE_CONTINUE;
}

gboolean listen_cb(gint fd, GIOCondition, gpointer data) {
    auto* w = static_cast<Worker*>(data);
    w->on_accept(fd);
    return G_SOURCE_CONTINUE;
}

gboolean sweep_cb(gpointer data) {
    static_cast<Worker*>(data)->sweep();
    return G_SOURCE_CONTINUE;
}

Server* g_server = nullptr;

gboolean signal_cb(gpointer) {
    if (g_server && !g_server->stopping.exchange(true)) {
        for (auto& w : g_server->workers) g_main_loop_quit(w->loop);
    }
    return G_SOURCE_CONTINUE;
}

void Worker::on_accept(int lfd) {
    for (int i = 0; i < 64; ++i) {
        SockAddr peer;
        peer.len = sizeof(peer.ss);
        int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&peer.ss), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
            if (errno == EMFILE || errno == ENFILE) {
                srv->log->event("-", std::string("accept: ") + std::strerror(errno) + "; connection left queued");
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
        c->deadline_ns = mono_ns() + srv->idle_ns;
        c->worker = this;
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

void Worker::update_events(Conn* c) {
    bool pending = c->out_pos < c->out.size();
    std::uint32_t ev = 0;  // EPOLLHUP and EPOLLERR are always reported
    if (pending)
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
        server::Output out;
        try {
            out = c->sc->on_bytes(ByteView(buf, static_cast<std::size_t>(n)), srv->clock, rng);
        } catch (const std::exception& e) {
            close_conn(c, std::string("internal error, request not answered: ") + e.what());
            return;
        }
        for (const auto& rec : out.activations) srv->record(c->peer_text, rec);
        for (const auto& line : out.log)
            // "call N: ..." lines repeat a fault or HRESULT that the activation record above already logged.
            if (line.rfind("call ", 0) != 0) srv->log->event(c->peer_text, line);
        if (!out.activations.empty() || !out.bytes.empty()) c->deadline_ns = mono_ns() + srv->idle_ns;
        log_context_refusals(c->peer_text, out.bytes);
        c->out.insert(c->out.end(), out.bytes.begin(), out.bytes.end());
        if (out.close) {
            c->closing = true;
            break;
        }
        if (static_cast<std::size_t>(n) < sizeof buf) break;
        if (c->out.size() > (1u << 20)) break;
    }
    flush(c);
}

void Worker::log_context_refusals(const std::string& who, const Bytes& answers) {
    // Binds answered without a usable KMS context are logged: the client cannot send a request.
    for (std::size_t off = 0; off + rpc::kHeaderSize <= answers.size();) {
        std::size_t len = answers[off + 8] | (answers[off + 9] << 8);
        if (len < rpc::kHeaderSize || off + len > answers.size()) break;
        std::uint8_t ptype = answers[off + 2];
        if (ptype == 12 || ptype == 15) {
            auto pdu = rpc::parse_pdu(ByteView(answers).subspan(off, len));
            if (pdu) {
                const auto& ack = std::get<rpc::BindAckBody>(pdu->body);
                bool accepted = false;
                for (const auto& r : ack.results) accepted = accepted || r.result == 0;
                if (!accepted)
                    srv->log->event(who, std::string(ptype == 12 ? "bind" : "alter_context") + " call " +
                                             std::to_string(pdu->header.call_id) + ": no context accepted (" +
                                             std::to_string(ack.results.size()) +
                                             " offered; KMS interface with NDR32/NDR64 required)");
            }
        }
        off += len;
    }
}

void Worker::poll_connections() {
    epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, 0);
    // Each connection appears at most once per batch, and handling one closes at most that one.
    for (int i = 0; i < n; ++i) on_io(static_cast<Conn*>(events[i].data.ptr), events[i].events);
}

void Worker::on_io(Conn* c, std::uint32_t cond) {
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
    for (auto& [fd, c] : conns)
        if (now >= c->deadline_ns) late.push_back(c.get());
    for (Conn* c : late) {
        std::string why = "idle timeout";
        if (c->sc->partial()) why += " with a partial PDU";
        if (c->out_pos < c->out.size()) why += " while the client did not read its answers";
        close_conn(c, why);
    }
}

void Server::record(const std::string& client, const server::ActivationRecord& rec) {
    log->activation(client, rec, *ctx.products);
    if (!db) return;
    try {
        std::string kms_id = rec.request ? rec.request->kms_id.to_string() : "(none)";
        std::uint32_t ls = rec.request ? rec.request->license_status : 0;
        std::uint32_t np = rec.request ? rec.request->n_policy : 0;
        db->record_request(kms_id, ls, result_kind(rec), rec.count, np, rec.time);
    } catch (const std::exception& e) {
        log->event(client, std::string("statistics not recorded: ") + e.what());
    }
}

bool Server::open_listeners() {
    std::vector<std::string> addrs = opts.listen;
    if (addrs.empty()) addrs.push_back("[::]");
    std::ofstream ready;
    for (const auto& text : addrs) {
        std::string err;
        auto a = parse_listen(text, opts.port, err);
        if (!a) {
            std::cerr << "kms-replay: --listen " << err << "\n";
            return false;
        }
        int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            std::cerr << "kms-replay: socket: " << std::strerror(errno) << "\n";
            return false;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ss.ss_family == AF_INET6) {
            // "[::]" is dual stack; a specific IPv6 address is IPv6 only.
            const auto& in6 = reinterpret_cast<const sockaddr_in6*>(&a->ss)->sin6_addr;
            int v6only = IN6_IS_ADDR_UNSPECIFIED(&in6) ? zero : one;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
        }
        if (bind(fd, reinterpret_cast<const sockaddr*>(&a->ss), a->len) != 0 || listen(fd, 4096) != 0) {
            std::cerr << "kms-replay: cannot listen on " << a->to_string() << ": " << std::strerror(errno) << "\n";
            ::close(fd);
            return false;
        }
        SockAddr bound;
        bound.len = sizeof bound.ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound.ss), &bound.len);
        std::cerr << "kms-replay: listening on " << bound.to_string() << "\n";
        listeners.push_back(fd);
    }
    return true;
}

bool Server::setup() {
    auto problems = validate(opts);
    if (!problems.empty()) {
        for (const auto& p : problems) std::cerr << "kms-replay: " << p << "\n";
        return false;
    }
    idle_ns = static_cast<std::int64_t>(opts.idle_timeout * 1e9);
    for (const auto& a : opts.allow) allow.push_back(*Cidr::parse(a));
    auto& c = ctx.config;
    c.ndr64 = opts.ndr64;
    c.btfn = opts.btfn;
    c.host_build = opts.host_build;
    c.lcid = opts.lcid;
    c.activation_interval = opts.activation_interval;
    c.renewal_interval = opts.renewal_interval;
    c.hwid = *HwId::parse(opts.hwid);
    c.max_n_policy = opts.max_n_policy;
    if (opts.max_time_skew > 0) c.max_time_skew_seconds = opts.max_time_skew;
    c.strict_opnum = opts.strict_opnum;
    c.max_requests_per_connection = opts.max_requests_per_connection;
    c.limits.max_pdu_size = opts.max_pdu_size;
    for (const auto& [fam, e] : opts.epid) {
        server::FamilyIdentity id{e, c.hwid};
        if (auto h = opts.family_hwid.find(fam); h != opts.family_hwid.end()) id.hwid = *HwId::parse(h->second);
        c.identities[fam] = id;
    }
    for (const auto& [fam, h] : opts.family_hwid)
        if (!c.identities.count(fam)) c.identities[fam] = server::FamilyIdentity{"", *HwId::parse(h)};
    SystemRandom rng;
    // Families with only a HwId configured get a generated ePID, then their HwId.
    std::map<std::string, HwId> hwid_only;
    for (auto it = c.identities.begin(); it != c.identities.end();) {
        if (it->second.epid.empty()) {
            hwid_only[it->first] = it->second.hwid;
            it = c.identities.erase(it);
        } else {
            ++it;
        }
    }
    ctx.identity = server::HostIdentity::create(c, clock.now(), rng);
    for (const auto& [fam, h] : hwid_only) {
        auto id = *ctx.identity.family(fam);
        id.hwid = h;
        ctx.identity.set(fam, id);
    }
    if (!opts.from.empty()) {
        try {
            auto rec = learn_server(capture::read_connections(opts.from));
            if (rec.responses == 0 && !rec.ndr64 && !rec.btfn) {
                std::cerr << "kms-replay: --from " << opts.from << ": no answer of the server recorded\n";
                return false;
            }
            if (rec.responses == 0)
                std::cerr << "kms-replay: --from " << opts.from
                          << ": no KMS response recorded; only the RPC choices (NDR64, BTFN) are taken\n";
            for (const auto& note : apply_recorded(rec, ctx)) std::cerr << "kms-replay: --from: " << note << "\n";
            if (opts.count_policy == "genuine")
                std::cerr << "kms-replay: --from: count-policy genuine replaces the recorded counts\n";
        } catch (const std::exception& e) {
            std::cerr << "kms-replay: --from: " << e.what() << "\n";
            return false;
        }
    }
    for (const auto& p : c.validate()) std::cerr << "kms-replay: warning: " << p << "\n";
    try {
        if (!opts.db.empty()) {
            db = std::make_unique<SqliteCmidStore>(opts.db, opts.db_sync == "full" ? SyncMode::Full : SyncMode::Normal);
            FileTime now = clock.now();
            db->expire(FileTime{now.ticks > kCmidLifetimeTicks ? now.ticks - kCmidLifetimeTicks : 0});
        }
        if (opts.count_policy == "genuine")
            ctx.counts = std::make_shared<GenuineCountPolicy>(*db);
        else if (opts.from.empty())
            ctx.counts = std::make_shared<server::FixedCountPolicy>(opts.fixed_count);
        log = std::make_unique<ActivationLog>(opts.log_file, opts.log_format == "json", opts.quiet);
    } catch (const std::exception& e) {
        std::cerr << "kms-replay: " << e.what() << "\n";
        return false;
    }
    return true;
}

int Server::run() {
    if (!setup()) return 2;
    raise_nofile(static_cast<std::uint64_t>(opts.max_connections) + 256);
    if (!open_listeners()) return 2;
    if (!opts.foreground) {
        if (opts.log_file.empty())
            std::cerr << "kms-replay: running in the background without --log-file: the activation log is lost; "
                         "use --foreground to keep it on standard output\n";
        // SQLite connections must not cross fork(): close the store (opened above to report errors while
        // the terminal is still attached) and open it again in the detached process.
        db.reset();
        if (daemon(1, 0) != 0) {
            std::cerr << "kms-replay: daemon: " << std::strerror(errno) << "\n";
            return 2;
        }
        if (!opts.db.empty()) {
            try {
                db = std::make_unique<SqliteCmidStore>(opts.db,
                                                       opts.db_sync == "full" ? SyncMode::Full : SyncMode::Normal);
                if (opts.count_policy == "genuine") ctx.counts = std::make_shared<GenuineCountPolicy>(*db);
            } catch (const std::exception& e) {
                log->event("-", std::string("cannot open the database after detaching: ") + e.what());
                return 2;
            }
        }
    }
    if (!opts.pid_file.empty()) std::ofstream(opts.pid_file) << getpid() << "\n";
    for (unsigned i = 0; i < opts.threads; ++i) {
        auto w = std::make_unique<Worker>();
        w->srv = this;
        w->ctx = g_main_context_new();
        w->loop = g_main_loop_new(w->ctx, FALSE);
        for (int fd : listeners) {
            GSource* s = g_unix_fd_source_new(fd, G_IO_IN);
            g_source_set_callback(s, reinterpret_cast<GSourceFunc>(reinterpret_cast<void (*)()>(listen_cb)), w.get(),
                                  nullptr);
            g_source_attach(s, w->ctx);
            w->sources.push_back(s);
        }
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0) {
            std::cerr << "kms-replay: epoll_create1: " << std::strerror(errno) << "\n";
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
    g_server = this;
    for (int sig : {SIGINT, SIGTERM}) {
        GSource* s = g_unix_signal_source_new(sig);
        g_source_set_callback(s, signal_cb, nullptr, nullptr);
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
    g_main_loop_run(workers[0]->loop);
    for (auto& w : workers) g_main_loop_quit(w->loop);
    for (auto& w : workers)
        if (w->thread.joinable()) w->thread.join();
    std::size_t open = 0;
    for (auto& w : workers) {
        open += w->conns.size();
        while (!w->conns.empty()) w->close_conn(w->conns.begin()->second.get(), "");
        for (GSource* s : w->sources) {
            g_source_destroy(s);
            g_source_unref(s);
        }
        ::close(w->epfd);
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

int run_serve(const ServeOptions& opts) {
    Server s(opts);
    return s.run();
}

}  // namespace kmscope::replay
