// The client side: builds bind, alter_context and request PDUs for any product, version, CMID,
// workstation and NDR choice the way Windows (and vlmcs) does, and verifies every answer through the
// conversation model. No sockets: the caller moves the bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kmscope/conversation.hpp"
#include "kmscope/environment.hpp"
#include "kmscope/kms.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/products.hpp"

namespace kmscope::client {

/// How the client negotiates.
struct ClientOptions {
    bool offer_ndr64 = true;          // offer NDR64 as context 1
    bool offer_btfn = true;           // offer bind-time feature negotiation as context 2
    bool conc_mpx = true;             // set CONC_MPX on bind / alter_context
    std::uint32_t first_call_id = 2;  // Windows and vlmcs start at 2
    std::uint16_t max_frag = 5840;
};

/// A request description from which a base request is built.
struct RequestSpec {
    kms::Version version{6, 0};
    Guid app_id, sku_id, kms_id, cmid;
    std::string workstation = "KMSCOPE";
    std::uint32_t license_status = 2;  // OOB grace
    std::uint32_t binding_expiration = 43200;
    std::uint32_t n_policy = 25;
    bool vm = false;
    Guid previous_cmid;
};

/// Fills a spec's GUIDs and N policy from the product table for a SKU, KMS ID or app GUID.
RequestSpec spec_for_product(const Guid& product, const ProductTable& table);
/// Builds the base request of a spec at client time `now`.
kms::BaseRequest make_base_request(const RequestSpec& spec, FileTime now);

/// The client side of one connection.
class ClientSession {
public:
    /// A client session negotiating as `options` says.
    explicit ClientSession(ClientOptions options = {});
    /// The bind PDU that opens the connection.
    Bytes bind();
    /// Feeds bytes from the server. Returns the PDU to send next (alter_context) or nothing.
    Bytes on_server_bytes(ByteView bytes, FileTime now);
    /// True once a context for NDR32 or NDR64 is usable.
    bool ready() const;
    /// True when negotiation failed (no usable context, bind_nak).
    bool failed() const { return failed_; }
    /// Builds a request PDU. Like Windows, the first request uses NDR32 and later ones NDR64 when both
    /// are bound; `ndr` forces one. Returns nothing when the wanted syntax is not bound.
    std::optional<Bytes> request(const kms::BaseRequest& base, RandomSource& rng, FileTime now,
                                 std::optional<rpc::Ndr> ndr = std::nullopt);
    /// Verified exchanges completed so far.
    std::vector<Exchange> take_exchanges();
    /// Ends the session; unanswered requests become NoResponse exchanges.
    void finish(FileTime now);
    /// Diagnostics seen so far (malformed answers and the like).
    const std::vector<std::string>& diagnostics() const { return diagnostics_; }

private:
    void collect();
    ClientOptions options_;
    Conversation conversation_;
    std::uint32_t next_call_id_;
    bool alter_sent_ = false;
    bool failed_ = false;
    int requests_sent_ = 0;
    std::vector<Exchange> exchanges_;
    std::vector<std::string> diagnostics_;
};

}  // namespace kmscope::client
