// serve's whole connection path, sockets excepted: replay::ServePath (the core's ServerConnection, the
// activation log, the genuine-count SQLite store with its statistics, the sync that must succeed before
// answers leave, and the withdrawal of answers when it fails), with serve's per-connection limits.
// Input: [config bits] [sync-failure mask] [chunking seed] [client byte stream].
//   config bits: 0 ndr64, 1 btfn, 2 JSON log lines, 3 genuine counts (else twice the N policy),
//   4-5 max_requests_per_connection, 6-7 max_binds_per_connection (0 = unlimited), and a 512-byte
//   max_pdu_size when both 4 and 6 are set.
//   sync-failure mask: bit i makes the i-th sync of the store fail (fdatasync returns EIO), as a disk
//   error would.
// The stream is fed in chunks; after each chunk the batch ends the way serve ends it.
// Invariants:
//   - every answer is one well-formed PDU, and the answers tile the output (no partial PDU is sent);
//   - when a sync fails, every response sent for that batch is the error answer 0x8007000D, never a KMS
//     response message: nothing that was not made durable is acknowledged;
//   - the connection asks to close at most once, and nothing is answered after that.
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "activation_log.hpp"
#include "cmid_store.hpp"
#include "fuzz_check.hpp"
#include "kmscope/counting.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/server.hpp"
#include "kmscope/status.hpp"
#include "serve_path.hpp"

using namespace kmscope;

namespace {

std::atomic<bool> g_fail_sync{false};  // the next syncs fail (they run on the store's sync thread)

// EIO while g_fail_sync is set, else the C library's function `name`.
int sync_or_fail(const char* name, int fd) {
    if (g_fail_sync) {
        errno = EIO;
        return -1;
    }
    using Fn = int (*)(int);
    auto real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    return real ? real(fd) : 0;
}

}  // namespace

// The store's sync, as SQLite calls it: failing on demand.
extern "C" int fdatasync(int fd) {
    return sync_or_fail("fdatasync", fd);
}
extern "C" int fsync(int fd) {
    return sync_or_fail("fsync", fd);
}

namespace {

constexpr std::uint64_t kSeed = 0x6b6d7370;
const FileTime kNow = FileTime::from_unix(1700000000);

// One database and two logs for the whole process: opening SQLite per input would dominate the run.
struct Shared {
    Shared() {
        const char* tmp = std::getenv("TMPDIR");
        path = std::string(tmp && *tmp ? tmp : "/tmp") + "/kms-fuzz-serve-path-" + std::to_string(getpid()) + ".db";
        for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
        db = std::make_unique<replay::SqliteCmidStore>(path, replay::SyncMode::Full);
        text_log = std::make_unique<replay::ActivationLog>("/dev/null", false);
        json_log = std::make_unique<replay::ActivationLog>("/dev/null", true);
    }
    ~Shared() {
        db.reset();
        for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    }
    std::string path;
    std::unique_ptr<replay::SqliteCmidStore> db;
    std::unique_ptr<replay::ActivationLog> text_log, json_log;
};

Shared& shared() {
    static Shared s;
    return s;
}

// Every PDU in `bytes` is whole and parses; with `withdrawn`, every response is the error answer
// 0x8007000D (in either transfer syntax), never a KMS response message.
void check_answers(ByteView bytes, bool withdrawn) {
    static const Bytes kError32 = rpc::build_error_stub(kHrInvalidData, rpc::Ndr::Ndr32);
    static const Bytes kError64 = rpc::build_error_stub(kHrInvalidData, rpc::Ndr::Ndr64);
    rpc::StreamFramer framer;
    framer.feed(bytes);
    std::size_t total = 0;
    while (auto f = framer.next()) {
        auto pdu = rpc::parse_pdu(f->bytes);
        FUZZ_CHECK(pdu);
        total += f->bytes.size();
        if (const auto* r = std::get_if<rpc::ResponseBody>(&pdu->body); r && withdrawn) {
            Bytes stub(r->stub.begin(), r->stub.end());
            FUZZ_CHECK(stub == kError32 || stub == kError64);
        }
    }
    FUZZ_CHECK(!framer.error());
    FUZZ_CHECK(total == bytes.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::uint8_t bits = data[0], fail_mask = data[1], seed = data[2];
    ByteView stream(data + 3, size - 3);
    Shared& sh = shared();

    server::ServerContext ctx;
    ctx.config.ndr64 = bits & 1;
    ctx.config.btfn = bits & 2;
    ctx.config.host_build = ctx.config.ndr64 ? 17763 : 7601;
    ctx.config.max_requests_per_connection = (bits >> 4) & 3;
    ctx.config.max_binds_per_connection = (bits >> 6) & 3;
    if ((bits & 0x50) == 0x50) ctx.config.limits.max_pdu_size = 512;
    SeededRandom rng(kSeed);
    ctx.identity = server::HostIdentity::create(ctx.config, kNow, rng);
    if (bits & 8) ctx.counts = std::make_shared<GenuineCountPolicy>(*sh.db);
    replay::ServePath path(ctx, (bits & 4) ? *sh.json_log : *sh.text_log, sh.db.get(), [](const std::string&) {});
    server::ServerConnection conn(ctx, 0x1234, 1688);
    FixedClock clock(kNow);

    std::uint32_t x = seed * 2654435761u + 1;
    unsigned syncs = 0;
    bool closed = false;
    for (std::size_t pos = 0; pos < stream.size() && !closed;) {
        std::size_t n = stream.size() - pos;
        if (seed) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            n = std::min<std::size_t>(n, 1 + x % 96);
        }
        ByteView chunk = stream.subspan(pos, n);
        pos += n;
        Bytes out;
        const std::uint64_t mark = path.mark();
        auto got = path.receive(conn, "fuzz", chunk, out, clock, rng);
        if (!got.failure.empty()) break;  // serve closes the connection without an answer
        closed = got.close;
        bool withdrawn = false;
        if (got.stored) {
            const bool fail = (fail_mask >> (syncs++ % 8)) & 1;
            g_fail_sync = fail;
            std::string err = path.end_batch_and_wait(mark);
            g_fail_sync = false;
            // Statistics alone need no sync: only a batch with counts can fail, and only by the disk.
            FUZZ_CHECK(err.empty() || fail);
            if (!err.empty()) {
                path.withdraw(conn, "fuzz", out, 0, err);
                withdrawn = true;
            }
        }
        check_answers(out, withdrawn);
    }
    // A request cut off by a failure may have left the batch's transaction open: a later input starts
    // from a clean batch.
    (void)path.end_batch_and_wait(path.mark());
    return 0;
}
