// The shared outcome vocabulary: one label per outcome and "ok" exactly when Exchange::ok() holds.
#include <gtest/gtest.h>

#include "kmscope/outcome.hpp"

using namespace kmscope;

TEST(Outcome, OneLabelPerOutcome) {
    EXPECT_EQ(outcome_label(Outcome::Response), "RESPONSE");
    EXPECT_EQ(outcome_label(Outcome::Hresult), "HRESULT");
    EXPECT_EQ(outcome_label(Outcome::Fault), "FAULT");
    EXPECT_EQ(outcome_label(Outcome::NoResponse), "NO RESPONSE");
    EXPECT_EQ(outcome_label(Outcome::Orphan), "ANSWER WITHOUT REQUEST");
    EXPECT_STREQ(outcome_name(Outcome::Orphan), "orphan");
}

TEST(Outcome, OkOnlyWhenTheExchangeIsOk) {
    Exchange x;
    x.outcome = Outcome::Response;
    // A response came back but did not decode: no check failed, yet it is not ok (send used to print "ok").
    EXPECT_FALSE(x.ok());
    EXPECT_EQ(verdict_text(x), "FAIL undecodable");
    x.verdict.failed = {kms::Check::Hash, kms::Check::Hmac};
    EXPECT_EQ(verdict_text(x), "FAIL hash hmac");
    EXPECT_EQ(verdict_text(Outcome::Response, kms::Verdict{}, true, 0), "ok");
}

TEST(Outcome, RefusalsAndMissingHalves) {
    Exchange x;
    x.outcome = Outcome::Hresult;
    x.hresult = 0x8007000D;
    EXPECT_EQ(verdict_text(x), "HRESULT 0x8007000D ERROR_INVALID_DATA");
    x.verdict.failed = {kms::Check::Version};
    EXPECT_EQ(verdict_text(x), "FAIL version, HRESULT 0x8007000D ERROR_INVALID_DATA");
    x.verdict.failed.clear();
    x.outcome = Outcome::Fault;
    x.hresult.reset();
    x.fault_status = 0x1C010003;
    EXPECT_EQ(verdict_text(x), "FAULT 0x1C010003 nca_s_unk_if");
    x.outcome = Outcome::NoResponse;
    EXPECT_EQ(verdict_text(x), "NO RESPONSE");
    x.outcome = Outcome::Orphan;
    EXPECT_EQ(verdict_text(x), "ANSWER WITHOUT REQUEST");
}
