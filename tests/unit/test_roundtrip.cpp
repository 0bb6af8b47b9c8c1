// Client -> server policy -> client verification for every version, NDR choice and bind shape, with
// several requests per connection.
#include <gtest/gtest.h>

#include "kmscope/client.hpp"
#include "kmscope/server.hpp"
#include "kmscope/status.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

using test::guid;

struct RoundTrip {
    int major;
    bool server_ndr64;
    bool client_ndr64;
    bool btfn;
};

std::string name_of(const RoundTrip& r) {
    std::string name = "v";
    name += std::to_string(r.major);
    name += r.server_ndr64 ? "_srvNdr64" : "_srvNdr32";
    name += r.client_ndr64 ? "_cliNdr64" : "_cliNdr32";
    name += r.btfn ? "_btfn" : "_nobtfn";
    return name;
}

class ClientServerRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(ClientServerRoundTrip, ThreeRequestsOnOneConnectionVerify) {
    const auto& p = GetParam();
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom server_rng(11), client_rng(22);
    server::ServerContext ctx;
    ctx.config.ndr64 = p.server_ndr64;
    ctx.config.btfn = p.btfn;
    ctx.config.host_build = p.server_ndr64 ? 17763 : 7601;
    ctx.identity = server::HostIdentity::create(ctx.config, clock.now(), server_rng);
    server::ServerConnection server(ctx, 0x1234, 1688);

    client::ClientOptions opts;
    opts.offer_ndr64 = p.client_ndr64;
    opts.offer_btfn = p.btfn;
    client::ClientSession client(opts);

    auto out = server.on_bytes(client.bind(), clock, server_rng);
    Bytes next = client.on_server_bytes(out.bytes, clock.now());
    const bool expect_alter = p.server_ndr64 && p.client_ndr64;
    EXPECT_EQ(!next.empty(), expect_alter);
    if (!next.empty()) {
        out = server.on_bytes(next, clock, server_rng);
        EXPECT_TRUE(client.on_server_bytes(out.bytes, clock.now()).empty());
    }
    ASSERT_TRUE(client.ready());

    auto spec = client::spec_for_product(guid("73111121-5638-40f6-bc11-f1d7b0d64300"), ProductTable::builtin());
    EXPECT_EQ(spec.kms_id, guid("58e2134f-8e11-4d17-9cb2-91069c151148"));
    EXPECT_EQ(spec.n_policy, 25u);
    spec.version = {static_cast<std::uint16_t>(p.major), 0};
    for (int i = 0; i < 3; ++i) {
        spec.cmid = guid("11111111-2222-4333-8444-55555555555" + std::to_string(i));
        spec.workstation = "HOST-" + std::to_string(i);
        auto req = client.request(client::make_base_request(spec, clock.now()), client_rng, clock.now());
        ASSERT_TRUE(req);
        out = server.on_bytes(*req, clock, server_rng);
        ASSERT_EQ(out.activations.size(), 1u);
        EXPECT_EQ(out.activations[0].hresult, 0u);
        EXPECT_EQ(out.activations[0].count, 50u);
        client.on_server_bytes(out.bytes, clock.now());
    }
    auto x = client.take_exchanges();
    ASSERT_EQ(x.size(), 3u);
    std::string first_epid;
    for (std::size_t i = 0; i < x.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_TRUE(x[i].ok());
        EXPECT_TRUE(x[i].diagnostics.empty()) << x[i].diagnostics.front().text;
        EXPECT_EQ(x[i].call_id, 2u + i);
        // Windows' pattern: the first request NDR32, later ones NDR64 when bound.
        rpc::Ndr want = expect_alter && i > 0 ? rpc::Ndr::Ndr64 : rpc::Ndr::Ndr32;
        EXPECT_EQ(x[i].ndr, want);
        ASSERT_TRUE(x[i].response);
        EXPECT_EQ(x[i].response->base.count, 50u);
        EXPECT_EQ(x[i].request->base.workstation(), "HOST-" + std::to_string(i));
        if (i == 0) first_epid = x[i].response->base.epid;
        EXPECT_EQ(x[i].response->base.epid, first_epid);  // stable for the server's life
    }
    // The ePID agrees with the host build (and so with the NDR64 choice).
    auto parts = parse_epid(first_epid);
    ASSERT_TRUE(parts);
    EXPECT_EQ(parts->build, ctx.config.host_build);
    EXPECT_EQ(parts->platform, platform_for_build(ctx.config.host_build));
    EXPECT_TRUE(ctx.config.validate().empty());
}

std::vector<RoundTrip> all_round_trips() {
    std::vector<RoundTrip> v;
    for (int major : {4, 5, 6})
        for (bool s : {true, false})
            for (bool c : {true, false})
                for (bool b : {true, false}) v.push_back({major, s, c, b});
    return v;
}

INSTANTIATE_TEST_SUITE_P(AllCombinations, ClientServerRoundTrip, ::testing::ValuesIn(all_round_trips()),
                         [](const auto& info) { return name_of(info.param); });

TEST(ClientServer, ForcedNdr64WithoutNdr64ContextIsRefusedLocally) {
    client::ClientSession client;
    server::ServerContext ctx;
    ctx.config.ndr64 = false;
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(3);
    ctx.identity = server::HostIdentity::create(ctx.config, clock.now(), rng);
    server::ServerConnection server(ctx, 1, 1688);
    client.on_server_bytes(server.on_bytes(client.bind(), clock, rng).bytes, clock.now());
    kms::BaseRequest base;
    base.version = {6, 0};
    EXPECT_FALSE(client.request(base, rng, clock.now(), rpc::Ndr::Ndr64));
    EXPECT_TRUE(client.request(base, rng, clock.now(), rpc::Ndr::Ndr32));
}

TEST(ClientServer, ServerRefusalsCarryTheRightHresult) {
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(5);
    server::ServerContext ctx;
    ctx.config.max_time_skew_seconds = 4 * 3600;
    ctx.identity = server::HostIdentity::create(ctx.config, clock.now(), rng);
    auto spec = client::spec_for_product(guid("73111121-5638-40f6-bc11-f1d7b0d64300"), ProductTable::builtin());
    struct Case {
        std::function<void(kms::BaseRequest&)> change;
        std::uint32_t hresult;
    } cases[] = {
        {[](auto& b) {
             b.version = {7, 0};
         },
         kHrInvalidData},
        {[](auto& b) {
             b.version = {6, 1};
         },
         kHrInvalidData},
        {[](auto& b) { b.n_policy = 1001; }, kHrInvalidData},
        {[](auto& b) { b.client_time.ticks += 5ull * 3600 * 10000000; }, kHrTimeSkew},
        {[](auto& b) { b.client_time.ticks -= 5ull * 3600 * 10000000; }, kHrTimeSkew},
    };
    for (const auto& c : cases) {
        auto base = client::make_base_request(spec, clock.now());
        c.change(base);
        auto answer = server::answer_kms_request(ctx, kms::build_request_message(base, rng), clock, rng);
        EXPECT_FALSE(answer.message);
        EXPECT_EQ(answer.hresult, c.hresult) << answer.record.reason;
        EXPECT_FALSE(answer.record.reason.empty());
    }
    // N policy 0 gets count 1, like vlmcsd.
    auto base = client::make_base_request(spec, clock.now());
    base.n_policy = 0;
    auto answer = server::answer_kms_request(ctx, kms::build_request_message(base, rng), clock, rng);
    ASSERT_TRUE(answer.message);
    EXPECT_EQ(kms::decode_response(*answer.message)->base.count, 1u);
}

// A count policy whose store cannot take the CMID (locked, full, deleted) makes the core refuse the
// request like any other refusal: ERROR_INVALID_DATA in the stub, the reason in the record, no count.
TEST(ClientServer, CountThatCannotBeRecordedIsRefused) {
    struct Unavailable final : server::CountPolicy {
        std::uint32_t count_for(const kms::BaseRequest&, FileTime) override {
            throw server::CountUnavailable("database is locked");
        }
    };
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(6);
    server::ServerContext ctx;
    ctx.identity = server::HostIdentity::create(ctx.config, clock.now(), rng);
    ctx.counts = std::make_shared<Unavailable>();
    auto spec = client::spec_for_product(guid("73111121-5638-40f6-bc11-f1d7b0d64300"), ProductTable::builtin());
    auto base = client::make_base_request(spec, clock.now());
    auto answer = server::answer_kms_request(ctx, kms::build_request_message(base, rng), clock, rng);
    EXPECT_FALSE(answer.message);
    EXPECT_EQ(answer.hresult, kHrInvalidData);
    EXPECT_EQ(answer.record.count, 0u);
    ASSERT_TRUE(answer.record.request);
    EXPECT_EQ(answer.record.request->cmid, base.cmid);
    EXPECT_EQ(answer.record.reason, "count not recorded, request not acknowledged: database is locked");
}

TEST(ClientServer, PerFamilyIntervalsAndEmptyIdentity) {
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(8);
    server::ServerContext ctx;  // no families at all: still answers
    auto spec = client::spec_for_product(guid("73111121-5638-40f6-bc11-f1d7b0d64300"), ProductTable::builtin());
    auto msg = kms::build_request_message(client::make_base_request(spec, clock.now()), rng);
    auto a = server::answer_kms_request(ctx, msg, clock, rng);
    ASSERT_TRUE(a.message);
    ctx.identity.set("Windows", {"03612-00206-559-186249-03-1033-17763.0000-1492024", kVlmcsdDefaultHwId, 60, 1440});
    a = server::answer_kms_request(ctx, msg, clock, rng);
    ASSERT_TRUE(a.message);
    auto p = kms::decode_response(*a.message);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->base.activation_interval, 60u);
    EXPECT_EQ(p->base.renewal_interval, 1440u);
    EXPECT_EQ(p->base.epid, "03612-00206-559-186249-03-1033-17763.0000-1492024");
}

TEST(ClientServer, BindsPastTheLimitCloseTheConnection) {
    // A peer that keeps binding would hold its connection, and the memory behind it, for ever.
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(9);
    server::ServerContext ctx;
    ctx.config.max_binds_per_connection = 2;
    server::ServerConnection conn(ctx, 1, 1688);
    rpc::BindBody body;
    body.contexts.push_back({0, rpc::kms_interface(), {rpc::ndr32_syntax()}});
    for (std::uint32_t call = 1; call <= 2; ++call) {
        auto out = conn.on_bytes(rpc::build_bind(rpc::PduType::Bind, 3, call, body), clock, rng);
        EXPECT_FALSE(out.close);
        EXPECT_TRUE(out.events.empty());
        ASSERT_TRUE(rpc::parse_pdu(out.bytes));
    }
    auto out = conn.on_bytes(rpc::build_bind(rpc::PduType::AlterContext, 3, 3, body), clock, rng);
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.bytes.empty());
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].kind, server::EventKind::BindLimit);
    EXPECT_EQ(server::describe(out.events[0]), "closing: alter_context call 3: more than 2 binds on one connection");
}

TEST(ClientServer, BindThatBindsNothingIsLogged) {
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(8);
    server::ServerContext ctx;
    server::ServerConnection conn(ctx, 1, 1688);
    rpc::BindBody body;
    body.contexts.push_back({0, {guid("12345678-1234-1234-1234-123456789abc"), 1}, {rpc::ndr32_syntax()}});
    auto out = conn.on_bytes(rpc::build_bind(rpc::PduType::Bind, 3, 2, body), clock, rng);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].kind, server::EventKind::ContextsRefused);
    EXPECT_EQ(server::event_name(out.events[0].kind), "contexts_refused");
    EXPECT_FALSE(server::answers_request(out.events[0].kind));
    EXPECT_EQ(server::describe(out.events[0]),
              "bind call 2: no context accepted (1 offered; the KMS interface with NDR32 or NDR64 is required)");
    auto ack = rpc::parse_pdu(out.bytes);
    ASSERT_TRUE(ack);
    EXPECT_EQ(std::get<rpc::BindAckBody>(ack->body).results.at(0).reason, 1);  // abstract syntax not supported
}

TEST(ClientServer, ConfigValidationFlagsInconsistentIdentity) {
    server::ServerConfig c;
    c.ndr64 = true;
    c.host_build = 7601;
    c.identities["Windows"] = {"not-an-epid", kVlmcsdDefaultHwId};
    c.identities["Nonsense"] = {"03612-00206-559-186249-03-1033-17763.0000-1492024", kVlmcsdDefaultHwId};
    auto problems = c.validate();
    ASSERT_EQ(problems.size(), 3u);
    EXPECT_NE(problems[0].find("predates Windows 8"), std::string::npos);
}

}  // namespace
}  // namespace kmscope
