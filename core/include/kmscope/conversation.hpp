// The conversation model: the bytes of one TCP connection (both directions, timestamped, in any
// chunking) become ordered events: negotiated contexts, decoded requests and responses, exchanges
// paired by call id with a verdict, faults, HRESULTs and diagnostics. The analyzer uses it as is;
// the dissector and the client call the same decoding and verification functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kmscope/bytes.hpp"
#include "kmscope/dcerpc.hpp"
#include "kmscope/kms.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/stream.hpp"

namespace kmscope {

enum class Direction : std::uint8_t { ToServer, ToClient };

/// "client->server" / "server->client".
const char* direction_name(Direction d);

/// A presentation context that the server accepted.
struct BoundContext {
    std::uint16_t context_id = 0;
    rpc::SyntaxId abstract;
    rpc::SyntaxId transfer;
    /// NDR flavour when the transfer syntax is NDR32 or NDR64.
    std::optional<rpc::Ndr> ndr() const;
};

/// A bind or alter_context together with its answer.
struct ContextNegotiation {
    FileTime time;  // time of the answer (or of the offer if unanswered)
    std::uint32_t call_id = 0;
    bool alter_context = false;
    std::uint8_t offer_flags = 0;
    std::uint8_t answer_flags = 0;
    std::vector<rpc::ContextItem> offered;
    std::vector<rpc::ContextResult> results;  // empty when refused with bind_nak or unanswered
    bool answered = false;
    bool nak = false;
    std::uint16_t nak_reason = 0;
    std::uint32_t assoc_group = 0;
    std::string secondary_address;
    bool padding_nonzero = false;  // the answer's alignment padding held stale bytes
    std::vector<BoundContext> accepted;
};

/// Every PDU seen, in order (for counting and fingerprinting).
struct PduEvent {
    FileTime time;
    Direction direction = Direction::ToServer;
    std::uint64_t stream_offset = 0;
    rpc::Header header;
};

/// What one diagnosis of an exchange is about. Each kind has a stable name (diagnosis_name) so that front
/// ends count, filter and raise each kind on its own; the text carries this exchange's values.
enum class DiagnosisKind : std::uint8_t {
    NoBind,               // a request on a context id with no bind in the capture (NDR inferred from the stub)
    UnboundContext,       // a request on a context id that was never bound
    Opnum,                // an opnum other than RequestActivation (0)
    RequestAllocHint,     // the request's alloc_hint differs from its stub size
    UnsupportedVersion,   // a KMS protocol version other than 4, 5 and 6
    RequestUndecodable,   // the request stub or message could not be decoded
    CallIdReused,         // a call id reused before its request was answered
    TooManyPending,       // too many unanswered requests on the connection; the oldest given up
    OrphanAnswer,         // a response or fault whose request was not seen
    RpcAnomaly,           // RPC framing of the response a Windows client rejects (rpc::RpcAnomaly)
    ResponseUndecodable,  // the response stub or message could not be decoded
    NullPointerOk,        // a NULL response pointer with return value 0
    MessageWithError,     // a response message with a non-zero return value
    FaultCallId,          // a fault whose call id differs from the one pending request's
    Fault,                // a fault PDU answered the request
    NoResponse,           // the connection ended before the request was answered
};

/// The stable snake_case name of a kind ("no_bind", "rpc_anomaly", ...): a string literal.
const char* diagnosis_name(DiagnosisKind kind);

/// One diagnosis of an exchange: its kind and the sentence with this exchange's values.
struct Diagnosis {
    DiagnosisKind kind{};
    std::string text;
};

/// How an exchange ended.
enum class Outcome : std::uint8_t {
    Response,    // a KMS response message came back
    Hresult,     // the stub carried a NULL pointer and a non-zero HRESULT
    Fault,       // a DCE/RPC fault PDU
    NoResponse,  // the request was never answered on this connection
    Orphan,      // an answer whose request was not seen
};

/// "response", "hresult", "fault", "no_response", "orphan".
const char* outcome_name(Outcome o);

/// One request/response pair (or the half that exists), decoded and verified.
struct Exchange {
    std::uint32_t call_id = 0;
    std::uint16_t context_id = 0;
    std::optional<rpc::Ndr> ndr;
    std::uint16_t opnum = 0;
    Outcome outcome = Outcome::NoResponse;

    std::optional<FileTime> request_time;
    Bytes request_message;  // the KMS message from the request stub
    std::size_t request_trailing = 0;
    std::optional<kms::Version> request_version;  // also for undecodable requests with a version
    std::optional<kms::DecodedRequest> request;
    std::optional<std::string> request_error;

    std::optional<FileTime> response_time;
    Bytes response_message;
    std::optional<kms::DecodedResponse> response;
    std::optional<std::string> response_error;
    std::optional<std::uint32_t> hresult;       // return value of the stub (0 with a message)
    std::optional<std::uint32_t> fault_status;  // fault PDU status

    kms::Verdict verdict;                // checks that failed
    std::vector<Diagnosis> diagnostics;  // anomalies and decoding errors, one sentence each

    /// True when a KMS response came back and every check passed.
    bool ok() const { return outcome == Outcome::Response && response && request && verdict.ok(); }
    /// Request-to-response time in milliseconds, when both were seen.
    std::optional<double> latency_ms() const;
};

/// A problem with the byte stream itself (not tied to one exchange).
struct Diagnostic {
    FileTime time;
    Direction direction = Direction::ToServer;
    std::uint64_t stream_offset = 0;
    std::string message;
};

using Event = std::variant<PduEvent, ContextNegotiation, Exchange, Diagnostic>;

/// Why a connection's analysis ends (affects the wording of unanswered requests).
enum class EndReason : std::uint8_t { Closed, Reset, Timeout, EndOfCapture };

/// Options of a conversation.
struct ConversationOptions {
    rpc::Limits limits;
    std::size_t max_pending_calls = 64;  // requests awaiting an answer
    bool emit_pdu_events = true;
};

/// Reassembles and decodes one TCP connection carrying KMS over DCE/RPC.
class Conversation {
public:
    /// A conversation with the given limits.
    explicit Conversation(ConversationOptions options = {});

    /// Feeds bytes received in one direction at time `t`.
    void feed(Direction dir, FileTime t, ByteView bytes);
    /// Reports that bytes are missing in one direction (a TCP gap). Framing of that direction resumes
    /// with the first later chunk that starts with a plausible PDU header; bytes before it are dropped.
    void gap(Direction dir, FileTime t, std::uint64_t missing_bytes);
    /// Ends the connection: unanswered requests become NoResponse exchanges, leftovers diagnostics.
    void finish(FileTime t, EndReason reason = EndReason::Closed);
    /// Moves the events produced so far out of the conversation.
    std::vector<Event> take_events();
    /// The same into `out` (emptied first), whose buffer the conversation keeps in exchange: a caller that
    /// reuses `out` allocates and regrows no vector per packet.
    void take_events(std::vector<Event>& out);

    /// Contexts currently bound on the connection.
    const std::map<std::uint16_t, BoundContext>& contexts() const { return bound_; }
    /// True once a bind to the KMS interface was seen (or a KMS request decoded).
    bool is_kms() const { return is_kms_; }
    /// True when one direction could not be framed as DCE/RPC at all.
    bool not_dcerpc() const { return not_dcerpc_; }
    /// Requests still waiting for an answer.
    std::size_t pending_requests() const { return pending_.size(); }

private:
    struct Side {
        rpc::StreamFramer framer;
        rpc::FragmentAssembler assembler;
        bool stopped = false;
        bool resync = false;         // after a gap: waiting for a chunk that starts a PDU
        std::uint64_t position = 0;  // stream offset of the next byte
        bool reported = false;
    };
    void drain(Direction dir, FileTime t);
    void on_pdu(Direction dir, FileTime t, const rpc::FrameView& frame);
    // Both take the context lists out of `pdu` (moved into the negotiation event, not copied).
    void on_bind(FileTime t, rpc::Pdu& pdu, bool alter);
    void on_bind_answer(FileTime t, rpc::Pdu& pdu);
    void on_request(FileTime t, std::uint64_t offset, const rpc::Pdu& pdu);
    void on_response(FileTime t, std::uint64_t offset, const rpc::Pdu& pdu);
    void on_fault(FileTime t, const rpc::Pdu& pdu);
    void complete(Exchange&& e);
    void diagnose(Direction dir, FileTime t, std::uint64_t offset, std::string message);
    std::optional<rpc::Ndr> ndr_for(std::uint16_t context_id) const;
    Side& side(Direction d) { return d == Direction::ToServer ? client_ : server_; }

    ConversationOptions options_;
    Side client_, server_;
    std::map<std::uint32_t, ContextNegotiation> pending_binds_;
    std::map<std::uint16_t, BoundContext> bound_;
    std::map<std::uint32_t, Exchange> pending_;
    std::vector<Event> events_;
    bool is_kms_ = false;
    bool not_dcerpc_ = false;
};

}  // namespace kmscope
