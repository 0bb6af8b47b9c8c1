// The server policy: request PDU bytes + configuration + clock + randomness -> answer bytes, the way
// a KMS host answers (docs/protocol.md §2.4-§2.9, §6.3, §8.3, §10.4, §11.1). No sockets: the front end
// owns the connection and passes bytes in and out.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kmscope/bytes.hpp"
#include "kmscope/dcerpc.hpp"
#include "kmscope/environment.hpp"
#include "kmscope/epid.hpp"
#include "kmscope/kms.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/products.hpp"
#include "kmscope/stream.hpp"

namespace kmscope::server {

/// The identity a host presents for one CSVLK family.
struct FamilyIdentity {
    std::string epid;
    HwId hwid = kVlmcsdDefaultHwId;
    std::optional<std::uint32_t> activation_interval{};  // overrides ServerConfig's, e.g. taken from a capture
    std::optional<std::uint32_t> renewal_interval{};
};

/// Everything configurable about the server.
struct ServerConfig {
    bool ndr64 = true;                 // accept NDR64 (then NDR32 is rejected when both are offered)
    bool btfn = true;                  // answer bind-time feature negotiation
    std::uint32_t host_build = 17763;  // the ePID build; must agree with `ndr64` (see validate())
    std::uint32_t lcid = 1033;
    std::uint32_t activation_interval = 120;            // minutes
    std::uint32_t renewal_interval = 10080;             // minutes
    HwId hwid = kVlmcsdDefaultHwId;                     // default HwId for every family
    std::map<std::string, FamilyIdentity> identities;   // per CSVLK family ini name: fixed ePID/HwId
    std::uint32_t max_n_policy = 1000;                  // larger N policies are refused with 0x8007000D
    std::optional<std::int64_t> max_time_skew_seconds;  // refuse (0xC004F06C) when set and exceeded
    bool strict_opnum = true;                           // fault nca_s_op_rng_error for opnum != 0
    std::uint32_t max_requests_per_connection = 0;      // 0 = unlimited
    /// Binds and alter_contexts one connection may send; 0 = unlimited. A client binds once; a peer that
    /// keeps binding holds a connection (and its memory) open forever.
    std::uint32_t max_binds_per_connection = 0;
    rpc::Limits limits;
    /// Problems with the configuration (e.g. NDR64 with a pre-Windows-8 build), one sentence each.
    std::vector<std::string> validate() const;
};

/// Thrown by a CountPolicy that cannot record the request (its store is locked, full or gone). The
/// server then refuses the request with ERROR_INVALID_DATA, the host's answer to an internal failure
/// (docs/protocol.md §11.1), rather than acknowledging a CMID it did not keep.
class CountUnavailable : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Decides the count a response reports.
class CountPolicy {
public:
    virtual ~CountPolicy() = default;
    /// The count for this request at time `now`; throws CountUnavailable when it cannot be recorded.
    virtual std::uint32_t count_for(const kms::BaseRequest& request, FileTime now) = 0;
};

/// A fixed count, or twice the request's N policy when `fixed` is 0 (what the emulators do).
class FixedCountPolicy final : public CountPolicy {
public:
    explicit FixedCountPolicy(std::uint32_t fixed = 0) : fixed_(fixed) {}
    std::uint32_t count_for(const kms::BaseRequest& request, FileTime now) override;

private:
    std::uint32_t fixed_;
};

/// The host's ePIDs and HwIds per CSVLK family, fixed for the server's lifetime.
class HostIdentity {
public:
    /// Generates a consistent identity: configured ePIDs win, the rest are generated from the host
    /// build, LCID and family at time `now`.
    static HostIdentity create(const ServerConfig& config, FileTime now, RandomSource& rng);
    /// The identity answering requests for this KMS ID (unknown KMS IDs get the Windows family; an
    /// identity without families answers with a placeholder ePID rather than failing).
    const FamilyIdentity& for_kms_id(const Guid& kms_id, const ProductTable& products) const;
    /// Identity of a family by ini name, or nullptr.
    const FamilyIdentity* family(std::string_view name) const;
    /// Replaces one family's identity.
    void set(const std::string& family, FamilyIdentity id) { families_[family] = std::move(id); }

private:
    std::map<std::string, FamilyIdentity, std::less<>> families_;
};

/// Everything a server needs that is shared between connections.
struct ServerContext {
    ServerConfig config;
    HostIdentity identity;
    std::shared_ptr<CountPolicy> counts = std::make_shared<FixedCountPolicy>();
    const ProductTable* products = &ProductTable::builtin();
};

/// One answered (or refused) activation, for the activation log.
struct ActivationRecord {
    FileTime time;
    std::uint32_t call_id = 0;
    std::optional<kms::Version> version;
    std::optional<kms::BaseRequest> request;
    std::uint32_t hresult = 0;  // 0 when a KMS response was sent
    std::uint32_t fault = 0;    // NCA status when a fault was sent
    std::uint32_t count = 0;
    std::string epid;
    std::string reason;  // why it was refused; empty on success
};

/// Something a connection did that a front end reports (a log line, a counter, a test assertion). Each
/// kind has a stable name and one wording, so every front end says the same thing the same way.
enum class EventKind : std::uint8_t {
    ContextsRefused,  // a bind or alter_context answered with no context accepted: no request can follow
    MalformedPdu,     // a PDU that does not parse: bind_nak, fault or close, by type
    FragmentError,    // a fragmented request that cannot be joined: fault, then close
    NotDceRpc,        // the byte stream is not DCE/RPC: close
    UnexpectedPdu,    // a PDU type that clients do not send: close
    BindLimit,        // more binds than max_binds_per_connection: close
    Fault,            // a request answered with a fault (also past max_requests_per_connection, then close)
    ErrorAnswer,      // a request answered with an HRESULT instead of a KMS response
};

/// One event of a connection: which PDU it concerns and why.
struct ServerEvent {
    EventKind kind{};
    std::uint8_t ptype = 0;  // the PDU type concerned (rpc::PduType), 0xFF when there is none
    std::uint32_t call_id = 0;
    std::uint32_t code = 0;  // NCA status (Fault), HRESULT (ErrorAnswer), else 0
    std::string detail;      // the specific reason, e.g. "context id 5 is not bound"
};

/// The stable snake_case name of an event kind ("contexts_refused", "fault", ...).
std::string_view event_name(EventKind kind);
/// One line describing the event, e.g. "bind call 2: no context accepted (1 offered; ...)".
std::string describe(const ServerEvent& event);
/// True when the event concerns an answered request, which the ActivationRecord of the same call also
/// reports (a front end that logs activation records need not log these events too).
constexpr bool answers_request(EventKind kind) {
    return kind == EventKind::Fault || kind == EventKind::ErrorAnswer;
}

/// What the connection handler wants the front end to do.
struct Output {
    Bytes bytes;         // send these
    bool close = false;  // then close the connection
    std::vector<ActivationRecord> activations;
    std::vector<ServerEvent> events;  // refused, faulted and dropped PDUs, with the reason
};

/// The server side of one connection: frames incoming bytes and answers every complete PDU.
class ServerConnection {
public:
    /// `assoc_group` is the connection's non-zero association group; `local_port` goes into bind_ack.
    ServerConnection(ServerContext& context, std::uint32_t assoc_group, std::uint16_t local_port);
    /// Processes bytes from the client; answers every complete PDU among them.
    Output on_bytes(ByteView chunk, const Clock& clock, RandomSource& rng);
    /// Answers one complete PDU.
    Output on_pdu(ByteView pdu, const Clock& clock, RandomSource& rng);
    /// For answers this connection produced that the front end cannot send as they are, because the
    /// counts they acknowledge were not made durable (the store's sync failed): every KMS response among
    /// `answers` becomes an error answer `hresult` on the same call and context, so the client retries
    /// later instead of waiting for an answer that never comes. Other PDUs are kept. One ErrorAnswer
    /// event per withdrawn response, with `reason`.
    Output withdraw_responses(ByteView answers, std::uint32_t hresult, const std::string& reason) const;
    /// Requests answered so far.
    std::uint32_t requests() const { return requests_; }
    /// True while a fragmented request is being reassembled or a PDU is partially received.
    bool partial() const { return framer_.buffered() > 0 || assembler_.pending() > 0; }

private:
    void answer_bind(const rpc::Pdu& pdu, Output& out);
    void answer_request(const rpc::Pdu& pdu, const Clock& clock, RandomSource& rng, Output& out);
    ServerContext& ctx_;
    std::uint32_t assoc_group_;
    std::uint16_t local_port_;
    rpc::StreamFramer framer_;
    rpc::FragmentAssembler assembler_;
    std::map<std::uint16_t, rpc::Ndr> contexts_;
    std::uint32_t requests_ = 0;
    std::uint32_t binds_ = 0;
};

/// The KMS-level answer to one KMS request message: the response message or an HRESULT.
struct KmsAnswer {
    std::optional<Bytes> message;
    std::uint32_t hresult = 0;
    ActivationRecord record;
};

/// Decodes a KMS request message and builds the answer per the server's policy.
KmsAnswer answer_kms_request(ServerContext& context, ByteView request_message, const Clock& clock, RandomSource& rng);

}  // namespace kmscope::server
