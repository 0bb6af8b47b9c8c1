#include "kmscope/conversation.hpp"

#include "kmscope/rpc_checks.hpp"
#include "kmscope/status.hpp"

namespace kmscope {

const char* direction_name(Direction d) {
    return d == Direction::ToServer ? "client->server" : "server->client";
}

const char* outcome_name(Outcome o) {
    switch (o) {
        case Outcome::Response:
            return "response";
        case Outcome::Hresult:
            return "hresult";
        case Outcome::Fault:
            return "fault";
        case Outcome::NoResponse:
            return "no_response";
        case Outcome::Orphan:
            return "orphan";
    }
    return "unknown";
}

const char* diagnosis_name(DiagnosisKind kind) {
    switch (kind) {
        case DiagnosisKind::NoBind:
            return "no_bind";
        case DiagnosisKind::UnboundContext:
            return "unbound_context";
        case DiagnosisKind::Opnum:
            return "opnum";
        case DiagnosisKind::RequestAllocHint:
            return "request_alloc_hint";
        case DiagnosisKind::UnsupportedVersion:
            return "unsupported_version";
        case DiagnosisKind::RequestUndecodable:
            return "request_undecodable";
        case DiagnosisKind::CallIdReused:
            return "call_id_reused";
        case DiagnosisKind::TooManyPending:
            return "too_many_pending";
        case DiagnosisKind::OrphanAnswer:
            return "orphan_answer";
        case DiagnosisKind::RpcAnomaly:
            return "rpc_anomaly";
        case DiagnosisKind::ResponseUndecodable:
            return "response_undecodable";
        case DiagnosisKind::NullPointerOk:
            return "null_pointer_ok";
        case DiagnosisKind::MessageWithError:
            return "message_with_error";
        case DiagnosisKind::FaultCallId:
            return "fault_call_id";
        case DiagnosisKind::Fault:
            return "fault";
        case DiagnosisKind::NoResponse:
            return "no_response";
    }
    return "unknown";
}

std::optional<rpc::Ndr> BoundContext::ndr() const {
    switch (rpc::classify_transfer(transfer)) {
        case rpc::TransferKind::Ndr32:
            return rpc::Ndr::Ndr32;
        case rpc::TransferKind::Ndr64:
            return rpc::Ndr::Ndr64;
        default:
            return std::nullopt;
    }
}

std::optional<double> Exchange::latency_ms() const {
    if (!request_time || !response_time) return std::nullopt;
    return (static_cast<double>(response_time->ticks) - static_cast<double>(request_time->ticks)) / 10000.0;
}

Conversation::Conversation(ConversationOptions options)
    : options_(options),
      client_{rpc::StreamFramer(options.limits), rpc::FragmentAssembler(options.limits)},
      server_{rpc::StreamFramer(options.limits), rpc::FragmentAssembler(options.limits)} {}

namespace {
// A chunk that begins with a well-formed CO header of a PDU type KMS uses is taken as a PDU boundary.
bool starts_pdu(ByteView bytes, const rpc::Limits& limits) {
    if (bytes.size() < rpc::kHeaderSize) return false;
    auto h = rpc::parse_header(bytes.first(rpc::kHeaderSize), 0, limits);
    return h && rpc::kms_pdu_type(h->ptype);
}
}  // namespace

void Conversation::feed(Direction dir, FileTime t, ByteView bytes) {
    Side& s = side(dir);
    if (s.stopped) return;
    if (s.resync) {
        if (!starts_pdu(bytes, options_.limits)) {
            s.position += bytes.size();  // still inside a PDU whose start was lost
            return;
        }
        s.resync = false;
        s.framer.restart(s.position);
        s.assembler = rpc::FragmentAssembler(options_.limits);
        diagnose(dir, t, s.position,
                 std::string("resynchronised the ") + direction_name(dir) + " stream at a PDU boundary");
    }
    s.framer.lend(bytes);  // framed in place: only a PDU cut at the end of `bytes` is copied, by keep()
    s.position += bytes.size();
    drain(dir, t);
    s.framer.keep();
}

void Conversation::gap(Direction dir, FileTime t, std::uint64_t missing_bytes) {
    Side& s = side(dir);
    if (s.stopped) return;
    std::string lost = s.framer.buffered() && !s.resync
                           ? " (and the " + std::to_string(s.framer.buffered()) + " bytes of the PDU it cut)"
                           : "";
    diagnose(dir, t, s.position,
             std::to_string(missing_bytes) + " bytes missing from the " + direction_name(dir) + " stream" + lost +
                 "; decoding resumes at the next segment that starts a PDU");
    s.resync = true;
    s.position += missing_bytes;
}

void Conversation::drain(Direction dir, FileTime t) {
    Side& s = side(dir);
    while (auto frame = s.framer.next_view()) on_pdu(dir, t, *frame);
    if (s.framer.error() && !s.reported) {
        s.reported = true;
        s.stopped = true;
        if (s.framer.error()->offset == 0) not_dcerpc_ = true;
        diagnose(dir, t, s.framer.error()->offset, "not a DCE/RPC stream: " + s.framer.error()->to_string());
    }
}

void Conversation::diagnose(Direction dir, FileTime t, std::uint64_t offset, std::string message) {
    // Constructed in place: moving a temporary std::variant into the vector makes GCC 12 at -O2 report a
    // false -Wmaybe-uninitialized on the inactive alternatives' members.
    events_.emplace_back(std::in_place_type<Diagnostic>, Diagnostic{t, dir, offset, std::move(message)});
}

std::optional<rpc::Ndr> Conversation::ndr_for(std::uint16_t context_id) const {
    auto it = bound_.find(context_id);
    if (it == bound_.end()) return std::nullopt;
    return it->second.ndr();
}

void Conversation::on_pdu(Direction dir, FileTime t, const rpc::FrameView& frame) {
    const ByteView raw = frame.bytes;
    const std::uint64_t offset = frame.stream_offset;
    auto pdu = rpc::parse_pdu(frame.header, raw, offset, options_.limits);
    if (!pdu) {
        diagnose(dir, t, offset,
                 "malformed " + rpc::pdu_type_name(raw.size() > 2 ? raw[2] : 0) + " PDU: " + pdu.error().to_string());
        return;
    }
    if (options_.emit_pdu_events) events_.push_back(PduEvent{t, dir, offset, pdu->header});
    const auto ptype = static_cast<rpc::PduType>(pdu->header.ptype);
    const bool from_client = dir == Direction::ToServer;
    switch (ptype) {
        case rpc::PduType::Bind:
        case rpc::PduType::AlterContext:
            if (!from_client) break;
            on_bind(t, *pdu, ptype == rpc::PduType::AlterContext);
            return;
        case rpc::PduType::BindAck:
        case rpc::PduType::AlterContextResp:
        case rpc::PduType::BindNak:
            if (from_client) break;
            on_bind_answer(t, *pdu);
            return;
        case rpc::PduType::Request:
        case rpc::PduType::Response: {
            if (from_client != (ptype == rpc::PduType::Request)) break;
            auto whole = side(dir).assembler.add_view(*pdu, raw);
            if (!whole) {
                diagnose(dir, t, offset, "fragment reassembly: " + whole.error().message);
                return;
            }
            if (!*whole) return;     // more fragments to come
            if ((*whole)->joined) {  // fragments joined: parsed once more, as one PDU
                auto joined = rpc::parse_pdu((*whole)->bytes, offset, options_.limits);
                if (!joined) return;
                // The views of `joined` point into the assembler's joined PDU, kept until its next add.
                if (from_client)
                    on_request(t, offset, *joined);
                else
                    on_response(t, offset, *joined);
                return;
            }
            if (from_client)
                on_request(t, offset, *pdu);
            else
                on_response(t, offset, *pdu);
            return;
        }
        case rpc::PduType::Fault:
            if (from_client) break;
            on_fault(t, *pdu);
            return;
        default:
            diagnose(dir, t, offset, "unexpected " + rpc::pdu_type_name(pdu->header.ptype) + " PDU");
            return;
    }
    diagnose(dir, t, offset, rpc::pdu_type_name(pdu->header.ptype) + " PDU sent in the wrong direction");
}

void Conversation::on_bind(FileTime t, rpc::Pdu& pdu, bool alter) {
    auto& body = std::get<rpc::BindBody>(pdu.body);
    ContextNegotiation n;
    n.time = t;
    n.call_id = pdu.header.call_id;
    n.alter_context = alter;
    n.offer_flags = pdu.header.flags;
    n.offered = std::move(body.contexts);
    for (const auto& item : n.offered)
        if (item.abstract.uuid == rpc::kms_interface().uuid) is_kms_ = true;
    if (pending_binds_.size() >= options_.max_pending_calls) pending_binds_.erase(pending_binds_.begin());
    pending_binds_[n.call_id] = std::move(n);
}

void Conversation::on_bind_answer(FileTime t, rpc::Pdu& pdu) {
    auto it = pending_binds_.find(pdu.header.call_id);
    if (it == pending_binds_.end() && pending_binds_.size() == 1) it = pending_binds_.begin();
    ContextNegotiation n;
    if (it != pending_binds_.end()) {
        n = std::move(it->second);
        pending_binds_.erase(it);
        if (n.call_id != pdu.header.call_id) n.offered.clear();  // cannot be sure which offer this answers
    } else {
        n.call_id = pdu.header.call_id;
        n.alter_context = pdu.header.ptype == static_cast<std::uint8_t>(rpc::PduType::AlterContextResp);
        diagnose(Direction::ToClient, t, 0,
                 rpc::pdu_type_name(pdu.header.ptype) + " for call " + std::to_string(pdu.header.call_id) +
                     " without a matching bind");
    }
    n.time = t;
    n.answered = true;
    n.answer_flags = pdu.header.flags;
    if (const auto* nak = std::get_if<rpc::BindNakBody>(&pdu.body)) {
        n.nak = true;
        n.nak_reason = nak->reject_reason;
    } else {
        auto& ack = std::get<rpc::BindAckBody>(pdu.body);
        n.results = std::move(ack.results);
        n.assoc_group = ack.assoc_group;
        n.secondary_address = std::move(ack.secondary_address);
        n.padding_nonzero = ack.padding_nonzero;
        if (!n.offered.empty() && n.results.size() != n.offered.size())
            diagnose(Direction::ToClient, t, 0,
                     std::to_string(n.results.size()) + " context results for " + std::to_string(n.offered.size()) +
                         " offered context items");
        for (std::size_t i = 0; i < n.results.size() && i < n.offered.size(); ++i) {
            if (n.results[i].result != static_cast<std::uint16_t>(rpc::ContextResultCode::Acceptance)) continue;
            BoundContext c{n.offered[i].context_id, n.offered[i].abstract, n.results[i].transfer};
            bound_[c.context_id] = c;
            n.accepted.push_back(c);
        }
    }
    events_.push_back(std::move(n));
}

void Conversation::on_request(FileTime t, std::uint64_t offset, const rpc::Pdu& pdu) {
    const auto& body = std::get<rpc::RequestBody>(pdu.body);
    Exchange e;
    e.call_id = pdu.header.call_id;
    e.context_id = body.context_id;
    e.opnum = body.opnum;
    e.request_time = t;
    e.ndr = ndr_for(body.context_id);
    if (!e.ndr) {
        e.ndr = rpc::infer_request_ndr(body.stub);
        if (bound_.count(body.context_id) == 0)
            e.diagnostics.push_back({bound_.empty() ? DiagnosisKind::NoBind : DiagnosisKind::UnboundContext,
                                     "request on context id " + std::to_string(body.context_id) +
                                         (bound_.empty() ? " without a bind in the capture; NDR inferred from the stub"
                                                         : " that was never bound")});
    }
    if (body.opnum != 0)
        e.diagnostics.push_back(
            {DiagnosisKind::Opnum, "opnum " + std::to_string(body.opnum) + " is not RequestActivation (0)"});
    if (!e.ndr) {
        e.request_error = "request stub framing is neither NDR32 nor NDR64";
    } else {
        auto stub = rpc::parse_request_stub(body.stub, *e.ndr, offset + body.stub_offset);
        if (!stub) {
            e.request_error = stub.error().to_string();
        } else {
            e.request_message.assign(stub->message.begin(), stub->message.end());
            e.request_trailing = stub->trailing;
            if (body.alloc_hint != body.stub.size())
                e.diagnostics.push_back({DiagnosisKind::RequestAllocHint,
                                         "request alloc_hint " + std::to_string(body.alloc_hint) +
                                             " differs from stub size " + std::to_string(body.stub.size())});
            auto decoded = kms::decode_request(e.request_message, offset + body.stub_offset + stub->message_offset);
            // The version a decoded request read; an undecodable one is peeked at, for the report.
            e.request_version = decoded ? std::optional(decoded->version) : kms::peek_version(e.request_message);
            if (decoded) {
                if (!decoded->version.supported())
                    e.diagnostics.push_back({DiagnosisKind::UnsupportedVersion,
                                             "unsupported KMS protocol version " + decoded->version.to_string() +
                                                 " (fields decoded with the v" +
                                                 std::to_string(decoded->version.major <= 4   ? 4
                                                                : decoded->version.major >= 6 ? 6
                                                                                              : 5) +
                                                 " envelope)"});
                e.request = std::move(*decoded);
                is_kms_ = true;
            } else {
                e.request_error = decoded.error().to_string();
            }
        }
    }
    if (e.request_error) e.diagnostics.push_back({DiagnosisKind::RequestUndecodable, "request: " + *e.request_error});
    auto old = pending_.find(e.call_id);
    if (old != pending_.end()) {
        Exchange prev = std::move(old->second);
        pending_.erase(old);
        prev.diagnostics.push_back({DiagnosisKind::CallIdReused, "call id " + std::to_string(prev.call_id) +
                                                                     " reused before this request was answered"});
        complete(std::move(prev));
    }
    if (pending_.size() >= options_.max_pending_calls) {
        Exchange oldest = std::move(pending_.begin()->second);
        pending_.erase(pending_.begin());
        oldest.diagnostics.push_back(
            {DiagnosisKind::TooManyPending, "too many unanswered requests on the connection; giving up on this one"});
        complete(std::move(oldest));
    }
    pending_[e.call_id] = std::move(e);
}

void Conversation::on_response(FileTime t, std::uint64_t offset, const rpc::Pdu& pdu) {
    const auto& body = std::get<rpc::ResponseBody>(pdu.body);
    Exchange e;
    auto it = pending_.find(pdu.header.call_id);
    if (it != pending_.end()) {
        e = std::move(it->second);
        pending_.erase(it);
    } else {
        e.call_id = pdu.header.call_id;
        e.context_id = body.context_id;
        e.ndr = ndr_for(body.context_id);
        e.diagnostics.push_back({DiagnosisKind::OrphanAnswer,
                                 "response to call " + std::to_string(e.call_id) + " whose request was not seen"});
    }
    e.response_time = t;
    e.outcome = it != pending_.end() ? Outcome::Response : Outcome::Orphan;
    if (!e.ndr) e.ndr = rpc::infer_response_ndr(body.stub);
    auto rpc_anomaly = [&](std::string text) {
        e.verdict.fail(kms::Check::Rpc);
        e.diagnostics.push_back({DiagnosisKind::RpcAnomaly, std::move(text)});
    };
    // The stub is framed first: the header's alloc_hint is checked against the message it carries.
    std::optional<Result<rpc::ResponseStub>> framed;
    if (e.ndr) framed.emplace(rpc::parse_response_stub(body.stub, *e.ndr, offset + body.stub_offset));
    // The header rules are shared with the dissector (rpc_checks.hpp). An orphan response has no request
    // context id of its own: e.context_id is the response's, so that check cannot fire.
    rpc::ResponseHeaderFacts facts;
    facts.flags = pdu.header.flags;
    facts.context_id = body.context_id;
    facts.cancel_count = body.cancel_count;
    facts.alloc_hint = body.alloc_hint;
    facts.request_context_id = e.context_id;
    if (framed && *framed && (*framed)->message) facts.message_size = (*framed)->message->size();
    facts.ndr = e.ndr.value_or(rpc::Ndr::Ndr32);
    for (auto& a : rpc::response_header_anomalies(facts)) rpc_anomaly(std::move(a.text));
    if (!e.ndr) {
        e.response_error = "response stub framing is neither NDR32 nor NDR64";
        e.diagnostics.push_back({DiagnosisKind::ResponseUndecodable, "response: " + *e.response_error});
        complete(std::move(e));
        return;
    }
    auto& stub = *framed;
    if (!stub) {
        e.response_error = stub.error().to_string();
        e.diagnostics.push_back({DiagnosisKind::ResponseUndecodable, "response: " + *e.response_error});
        complete(std::move(e));
        return;
    }
    for (auto& a : stub->anomalies) rpc_anomaly(a.text);
    e.hresult = stub->return_value;
    if (!stub->message) {
        if (e.outcome == Outcome::Response) e.outcome = Outcome::Hresult;
        if (stub->return_value == 0)
            e.diagnostics.push_back({DiagnosisKind::NullPointerOk, "NULL response pointer with return value 0"});
        complete(std::move(e));
        return;
    }
    if (stub->return_value != 0)
        e.diagnostics.push_back({DiagnosisKind::MessageWithError,
                                 "response message with non-zero return value " + hex32(stub->return_value)});
    e.response_message.assign(stub->message->begin(), stub->message->end());
    auto decoded = kms::decode_response(e.response_message, offset + body.stub_offset + stub->message_offset);
    if (!decoded) {
        e.response_error = decoded.error().to_string();
        e.diagnostics.push_back({DiagnosisKind::ResponseUndecodable, "response: " + *e.response_error});
    } else {
        e.response = std::move(*decoded);
    }
    complete(std::move(e));
}

void Conversation::on_fault(FileTime t, const rpc::Pdu& pdu) {
    const auto& body = std::get<rpc::FaultBody>(pdu.body);
    Exchange e;
    auto it = pending_.find(pdu.header.call_id);
    std::string note;
    DiagnosisKind note_kind = DiagnosisKind::FaultCallId;
    if (it == pending_.end() && pending_.size() == 1) {
        // vlmcsd answers faults with call_id 2 whatever the request's call_id was.
        it = pending_.begin();
        note = "fault call id " + std::to_string(pdu.header.call_id) + " does not match the request's call id " +
               std::to_string(it->first);
    }
    if (it != pending_.end()) {
        e = std::move(it->second);
        pending_.erase(it);
        e.outcome = Outcome::Fault;
    } else {
        e.call_id = pdu.header.call_id;
        e.context_id = body.context_id;
        e.outcome = Outcome::Orphan;
        note_kind = DiagnosisKind::OrphanAnswer;
        note = "fault for call " + std::to_string(e.call_id) + " whose request was not seen";
    }
    if (!note.empty()) e.diagnostics.push_back({note_kind, note});
    e.response_time = t;
    e.fault_status = body.status;
    auto name = nca_status_name(body.status);
    e.diagnostics.push_back(
        {DiagnosisKind::Fault, "fault " + hex32(body.status) + (name.empty() ? "" : " (" + std::string(name) + ")")});
    complete(std::move(e));
}

void Conversation::complete(Exchange&& e) {
    if (e.request) {
        kms::Verdict v = e.response ? kms::verify_exchange(*e.request, *e.response) : kms::verify_request(*e.request);
        for (auto c : v.failed) e.verdict.fail(c);
    }
    events_.emplace_back(std::in_place_type<Exchange>, std::move(e));  // in place: see diagnose()
}

void Conversation::finish(FileTime t, EndReason reason) {
    static constexpr const char* kWhy[] = {"the connection was closed", "the connection was reset",
                                           "the connection timed out", "the capture ended"};
    for (auto& [call_id, e] : pending_) {
        e.outcome = Outcome::NoResponse;
        e.diagnostics.push_back(
            {DiagnosisKind::NoResponse,
             std::string("no response: ") + kWhy[static_cast<int>(reason)] + " before the request was answered"});
        complete(std::move(e));
    }
    pending_.clear();
    for (auto& [call_id, n] : pending_binds_) {
        diagnose(Direction::ToServer, t, 0,
                 std::string(n.alter_context ? "alter_context" : "bind") + " call " + std::to_string(call_id) +
                     " was never answered");
        events_.push_back(std::move(n));
    }
    pending_binds_.clear();
    for (Direction d : {Direction::ToServer, Direction::ToClient}) {
        Side& s = side(d);
        if (!s.stopped && !s.resync && s.framer.buffered())
            diagnose(d, t, s.framer.total_fed() - s.framer.buffered(),
                     std::to_string(s.framer.buffered()) + " bytes of an incomplete PDU at the end of the " +
                         direction_name(d) + " stream");
        s.stopped = true;
    }
}

std::vector<Event> Conversation::take_events() {
    std::vector<Event> out;
    out.swap(events_);
    return out;
}

void Conversation::take_events(std::vector<Event>& out) {
    out.clear();
    if (!events_.empty()) out.swap(events_);  // a conversation without events keeps no buffer
}

}  // namespace kmscope
