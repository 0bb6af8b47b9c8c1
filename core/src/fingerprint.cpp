#include "kmscope/fingerprint.hpp"

#include <algorithm>

#include "kmscope/epid.hpp"
#include "kmscope/status.hpp"

namespace kmscope {

namespace {
constexpr std::uint32_t kPykmsAssocGroup = 0x1063bf3f;
}  // namespace

const char* server_impl_name(ServerImpl impl) {
    switch (impl) {
        case ServerImpl::Vlmcsd:
            return "vlmcsd";
        case ServerImpl::PyKms:
            return "py-kms";
        case ServerImpl::GenuineLike:
            return "genuine-like";
        case ServerImpl::Unknown:
            break;
    }
    return "unknown";
}

void ServerFingerprint::tell(std::string_view text) {
    if (std::find(tells_.begin(), tells_.end(), text) == tells_.end()) tells_.emplace_back(text);
}

void ServerFingerprint::observe(const ContextNegotiation& n) {
    if (!n.answered || n.nak) return;
    if (n.assoc_group == kPykmsAssocGroup) {
        ++pykms_;
        tell("bind_ack assoc_group 0x1063bf3f (py-kms constant)");
    }
    if (n.padding_nonzero) {
        ++vlmcsd_;
        tell("stale bytes in the bind answer's padding (vlmcsd)");
    }
    if (!n.alter_context) {
        if (last_assoc_group_ && n.assoc_group == *last_assoc_group_ + 1) {
            ++vlmcsd_;
            tell("assoc_group grows by 1 per connection (vlmcsd)");
        }
        last_assoc_group_ = n.assoc_group;
    }
    bool offered_ndr64 = false;
    for (const auto& item : n.offered)
        for (const auto& t : item.transfer)
            if (rpc::classify_transfer(t) == rpc::TransferKind::Ndr64) offered_ndr64 = true;
    if (offered_ndr64 && !n.alter_context) {
        bool accepted = false;
        for (const auto& c : n.accepted) accepted = accepted || c.ndr() == rpc::Ndr::Ndr64;
        ndr64_accepted_ = accepted;
        check_consistency();
    }
    if (n.alter_context && (n.answer_flags & rpc::flag::kConcMpx) == 0 && !n.secondary_address.empty()) {
        ++emulator_;
        tell("alter_context_resp carries a secondary address");
    }
}

void ServerFingerprint::observe(const Exchange& x) {
    // vlmcsd answers with a fault on call id 2 whatever the request's call id (the id is in the text).
    for (const auto& d : x.diagnostics)
        if (d.kind == DiagnosisKind::FaultCallId && d.text.rfind("fault call id 2 ", 0) == 0) {
            ++vlmcsd_;
            tell("fault with call id 2 regardless of the request (vlmcsd bug)");
        }
    if (!x.response) return;
    answered_ = true;
    const auto& r = *x.response;
    if (r.hwid == kVlmcsdDefaultHwId) {
        ++vlmcsd_;
        tell("HwId 3A1C049600B60076 (vlmcsd default)");
    }
    if (r.hwid == kPykmsOldHwId) {
        ++pykms_;
        tell("HwId 364F463A8863D35F (older py-kms default)");
    }
    if (x.request && r.version.major == 6 && r.iv == x.request->iv) {
        ++emulator_;
        tell("v6 response reuses the request IV (v5 rules in v6)");
    }
    // Only "one ePID or several" matters: state stays constant however many responses a server sends.
    if (last_epid_ == r.base.epid) return check_consistency();
    if (last_epid_ && !several_epids_) {
        several_epids_ = true;
        ++emulator_;
        tell("different ePIDs from the same server (per-request random ePIDs: py-kms default, vlmcsd -r2)");
    }
    last_epid_ = r.base.epid;
    if (r.base.epid_parts) epid_build_ = r.base.epid_parts->build;
    check_consistency();
}

void ServerFingerprint::check_consistency() {
    if (!ndr64_accepted_ || !epid_build_) return;
    if (*ndr64_accepted_ && *epid_build_ <= 7601) {
        ++emulator_;
        tell("NDR64 accepted although the ePID claims host build " + std::to_string(*epid_build_));
    } else if (!*ndr64_accepted_ && *epid_build_ >= 9200) {
        ++emulator_;
        tell("NDR64 rejected although the ePID claims host build " + std::to_string(*epid_build_));
    }
}

void ServerFingerprint::absorb(const ServerFingerprint& later) {
    vlmcsd_ += later.vlmcsd_;
    pykms_ += later.pykms_;
    emulator_ += later.emulator_;
    answered_ = answered_ || later.answered_;
    for (const auto& t : later.tells_) tell(t);
    if (later.last_epid_) {
        if (last_epid_ && *last_epid_ != *later.last_epid_ && !several_epids_ && !later.several_epids_) {
            several_epids_ = true;
            ++emulator_;
            tell("different ePIDs from the same server (per-request random ePIDs: py-kms default, vlmcsd -r2)");
        }
        last_epid_ = later.last_epid_;
    }
    if (later.several_epids_ && several_epids_) --emulator_;  // the tell counts once, as in one file
    several_epids_ = several_epids_ || later.several_epids_;
    if (later.epid_build_) epid_build_ = later.epid_build_;
    if (later.ndr64_accepted_) ndr64_accepted_ = later.ndr64_accepted_;
    last_assoc_group_.reset();
}

void ServerFingerprint::observe(const Event& e) {
    if (const auto* n = std::get_if<ContextNegotiation>(&e)) observe(*n);
    if (const auto* x = std::get_if<Exchange>(&e)) observe(*x);
}

ServerImpl ServerFingerprint::verdict() const {
    if (pykms_ > vlmcsd_) return ServerImpl::PyKms;
    if (vlmcsd_ > 0) return ServerImpl::Vlmcsd;
    if (!answered_) return ServerImpl::Unknown;
    // Tells that only say "emulator" (no strong sign of which) leave the implementation unknown.
    return emulator_ > 0 ? ServerImpl::Unknown : ServerImpl::GenuineLike;
}

}  // namespace kmscope
