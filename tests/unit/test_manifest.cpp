// Every capture in captures/ through the capture readers + the TCP split + the conversation model, checked against
// every protocol value the peers logged (captures/MANIFEST.json).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "kmscope/ndr.hpp"
#include "kmscope/status.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

using json = nlohmann::json;

using test::manifest;

// vlmcsd's names for its checks -> ours.
kms::Check check_from_vlmcsd(const std::string& code) {
    static const std::map<std::string, kms::Check> m = {
        {"RequestMacV4", kms::Check::RequestMac}, {"HashOK", kms::Check::Hash},
        {"TimeStampOK", kms::Check::ClientTime},  {"ClientMachineIDOK", kms::Check::Cmid},
        {"VersionOK", kms::Check::Version},       {"DecryptSuccess", kms::Check::Decrypt},
        {"HmacSha256OK", kms::Check::Hmac},       {"PidLengthOK", kms::Check::Pid},
        {"IVnotSuspicious", kms::Check::IvReused}};
    return m.at(code);
}

std::string utc_seconds(FileTime t) {
    auto iso = t.to_iso8601();  // 2026-11-21T23:53:31[.fraction]Z
    return iso.substr(0, 10) + " " + iso.substr(11, 8);
}

struct Observed {
    std::uint64_t kms_connections = 0, all_connections = 0;
    std::map<std::string, int> pdus;
    std::vector<std::pair<std::uint64_t, Exchange>> exchanges;  // (KMS connection number, exchange)
};

Observed observe(const std::string& file) {
    Observed o;
    auto conns = test::analyse_capture(test::capture_path(file));
    o.all_connections = conns.size();
    for (const auto& c : conns) {
        if (!c.is_kms) continue;
        ++o.kms_connections;
        for (const auto& ev : c.events) {
            if (auto* p = std::get_if<PduEvent>(&ev)) ++o.pdus[rpc::pdu_type_name(p->header.ptype)];
            if (auto* x = std::get_if<Exchange>(&ev)) o.exchanges.emplace_back(o.kms_connections, *x);
        }
    }
    // Capture order of the requests.
    std::stable_sort(o.exchanges.begin(), o.exchanges.end(), [](const auto& a, const auto& b) {
        auto ta = a.second.request_time.value_or(a.second.response_time.value_or(FileTime{}));
        auto tb = b.second.request_time.value_or(b.second.response_time.value_or(FileTime{}));
        return std::tie(ta.ticks, a.first, a.second.call_id) < std::tie(tb.ticks, b.first, b.second.call_id);
    });
    return o;
}

class ManifestCapture : public ::testing::TestWithParam<std::string> {};

TEST_P(ManifestCapture, MatchesEveryLoggedValue) {
    const std::string file = GetParam();
    const json* entry = nullptr;
    for (const auto& e : manifest())
        if (e.at("file") == file) entry = &e;
    ASSERT_NE(entry, nullptr);
    const json& exp = entry->at("expected");
    Observed o = observe(file);

    EXPECT_EQ(o.kms_connections, exp.at("tcp_connections").get<std::uint64_t>());
    if (exp.contains("tcp_connections_total_incl_background")) {
        EXPECT_EQ(o.all_connections, exp.at("tcp_connections_total_incl_background").get<std::uint64_t>());
    }
    std::map<std::string, int> want_pdus;
    for (auto& [k, v] : exp.at("rpc_pdus").items()) want_pdus[k] = v.get<int>();
    EXPECT_EQ(o.pdus, want_pdus);

    int requests = 0, responses = 0;
    std::vector<std::string> errors;
    for (const auto& [conn, x] : o.exchanges) {
        if (x.request_time) ++requests;
        if (x.outcome == Outcome::Response && !x.response_message.empty()) ++responses;
        if (x.outcome == Outcome::Hresult && x.hresult) errors.push_back(hex32(*x.hresult));
    }
    EXPECT_EQ(requests, exp.at("kms_requests").get<int>());
    EXPECT_EQ(responses, exp.at("kms_responses").get<int>());
    EXPECT_EQ(errors, exp.at("errors").get<std::vector<std::string>>());
    ASSERT_EQ(o.exchanges.size(), exp.at("per_request").size());

    for (const auto& r : exp.at("per_request")) {
        const auto idx = r.at("index").get<std::size_t>();
        SCOPED_TRACE(file + " request " + std::to_string(idx));
        const auto& [conn, x] = o.exchanges.at(idx - 1);
        EXPECT_EQ(conn, r.at("tcp_connection").get<std::uint64_t>());
        EXPECT_EQ(x.call_id, r.at("call_id").get<std::uint32_t>());
        EXPECT_EQ(x.context_id, r.at("ctx_id").get<std::uint16_t>());
        ASSERT_TRUE(x.ndr);
        EXPECT_EQ(rpc::ndr_name(*x.ndr), r.at("ndr").get<std::string>());
        ASSERT_TRUE(x.request) << x.request_error.value_or("");
        const auto& b = x.request->base;
        EXPECT_EQ(x.request->version.to_string(), r.at("protocol_version").get<std::string>());
        EXPECT_EQ(b.app_id.to_string(), r.at("app_id").get<std::string>());
        EXPECT_EQ(b.sku_id.to_string(), r.at("sku_id").get<std::string>());
        EXPECT_EQ(b.kms_id.to_string(), r.at("kms_id").get<std::string>());
        EXPECT_EQ(b.cmid.to_string(), r.at("cmid").get<std::string>());
        EXPECT_EQ(b.workstation(), r.at("workstation").get<std::string>());
        EXPECT_EQ(b.license_status, r.at("license_status").get<std::uint32_t>());
        EXPECT_EQ(b.n_policy, r.at("n_policy").get<std::uint32_t>());
        EXPECT_EQ(b.vm_info != 0, r.at("vm").get<bool>());
        EXPECT_EQ(b.binding_expiration, r.at("binding_expiration").get<std::uint32_t>());
        EXPECT_EQ(utc_seconds(b.client_time), r.at("client_time_utc").get<std::string>());
        if (r.contains("client_time_filetime")) {
            EXPECT_EQ(b.client_time.ticks, std::stoull(r.at("client_time_filetime").get<std::string>(), nullptr, 16));
        }
        if (r.contains("verification")) {
            EXPECT_EQ(x.request->mac_ok, r.at("verification") == "ok");
        }
        if (r.contains("decrypts_with_pkcs7_04040404")) {
            EXPECT_EQ(x.request->padding_ok, r.at("decrypts_with_pkcs7_04040404").get<bool>());
        }
        EXPECT_EQ(x.request_trailing, r.value("request_stub_trailing_bytes", 0u));
    }

    std::set<std::size_t> answered;
    for (const auto& p : exp.at("per_response")) {
        const auto ridx = p.at("request_index").get<std::size_t>();
        answered.insert(ridx);
        SCOPED_TRACE(file + " response to request " + std::to_string(ridx));
        const auto& x = o.exchanges.at(ridx - 1).second;
        ASSERT_EQ(x.outcome, Outcome::Response);
        ASSERT_TRUE(x.response) << x.response_error.value_or("");
        const auto& base = x.response->base;
        EXPECT_EQ(x.response->version.to_string(), p.at("protocol_version").get<std::string>());
        EXPECT_EQ(base.epid, p.at("epid").get<std::string>());
        if (p.contains("hwid")) {
            ASSERT_TRUE(x.response->hwid);
            EXPECT_EQ(x.response->hwid->to_string(), p.at("hwid").get<std::string>());
        } else {
            EXPECT_EQ(x.response->hwid.has_value(), x.response->version.major == 6);
        }
        EXPECT_EQ(base.count, p.at("count").get<std::uint32_t>());
        EXPECT_EQ(base.activation_interval, p.at("activation_interval").get<std::uint32_t>());
        EXPECT_EQ(base.renewal_interval, p.at("renewal_interval").get<std::uint32_t>());
        EXPECT_EQ(x.response->message_size, p.at("kms_message_size").get<std::size_t>());
        EXPECT_EQ(x.response_message.size(), p.at("kms_message_size").get<std::size_t>());
        if (p.contains("v5_iv_equals_request_iv")) {
            EXPECT_EQ(x.response->iv == x.request->iv, p.at("v5_iv_equals_request_iv").get<bool>());
        }
        if (p.contains("v6_iv_differs_from_request_iv")) {
            EXPECT_EQ(x.response->iv != x.request->iv, p.at("v6_iv_differs_from_request_iv").get<bool>());
        }
        EXPECT_EQ(x.ok(), p.at("verification") == "ok") << [&] {
            std::string s;
            for (auto c : x.verdict.failed) s += std::string(kms::check_name(c)) + " ";
            for (const auto& d : x.diagnostics) s += "| " + d.text;
            return s;
        }();
        if (p.contains("failed_checks_vlmcsd_code")) {
            std::vector<kms::Check> want;
            for (const auto& c : p.at("failed_checks_vlmcsd_code")) want.push_back(check_from_vlmcsd(c));
            EXPECT_EQ(x.verdict.failed, want);  // exactly the tampered check, nothing else
        } else {
            EXPECT_TRUE(x.verdict.failed.empty());
            EXPECT_TRUE(x.diagnostics.empty()) << x.diagnostics.front().text;
        }
    }

    for (const auto& d : exp.value("error_details", json::array())) {
        const auto ridx = d.at("request_index").get<std::size_t>();
        SCOPED_TRACE(file + " error of request " + std::to_string(ridx));
        const auto& x = o.exchanges.at(ridx - 1).second;
        if (d.contains("hresult")) {
            EXPECT_EQ(x.outcome, Outcome::Hresult);
            ASSERT_TRUE(x.hresult);
            EXPECT_EQ(hex32(*x.hresult), d.at("hresult").get<std::string>());
            EXPECT_EQ(x.call_id, d.at("call_id").get<std::uint32_t>());
        } else {
            EXPECT_EQ(x.outcome, Outcome::NoResponse);
            EXPECT_NE(d.at("kind").get<std::string>().find("no answer"), std::string::npos);
            ASSERT_FALSE(x.diagnostics.empty());
            EXPECT_EQ(x.diagnostics.back().kind, DiagnosisKind::NoResponse);
            EXPECT_NE(x.diagnostics.back().text.find("no response"), std::string::npos);
        }
        answered.insert(ridx);
    }
    EXPECT_EQ(answered.size(), o.exchanges.size()) << "every request is either answered or an error";

    for (const auto& f : exp.value("expected_verification_failures", json::array())) {
        const auto& x = o.exchanges.at(f.at("exchange_index").get<std::size_t>() - 1).second;
        EXPECT_FALSE(x.ok());
    }
}

INSTANTIATE_TEST_SUITE_P(Captures, ManifestCapture, ::testing::ValuesIn(test::capture_names()),
                         [](const auto& info) { return test::param_name(info.param); });

TEST(ManifestCoverage, EveryCaptureFileIsInTheManifest) {
    auto names = test::capture_names();
    EXPECT_EQ(names.size(), 29u);
    for (const auto& n : names) {
        std::ifstream f(test::capture_path(n));
        EXPECT_TRUE(f.good()) << n;
    }
}

}  // namespace
}  // namespace kmscope
