// One vocabulary for how an exchange ended, beside kms::check_name: the outcome's stable name (JSON,
// filters), its label in text output, and the verdict sentence every tool prints (kms-analyze's table,
// kms-replay check and send, the Wireshark plugin), so that one outcome has one name and one label
// everywhere, and "ok" is printed exactly when Exchange::ok() holds. docs/json.md lists the JSON fields
// the tools share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kmscope/conversation.hpp"
#include "kmscope/kms.hpp"

namespace kmscope {

/// Label of an outcome in text output: "RESPONSE", "HRESULT", "FAULT", "NO RESPONSE", "ANSWER WITHOUT
/// REQUEST" (outcome_name() gives the stable JSON name: "response", ..., "orphan").
std::string_view outcome_label(Outcome o);

/// The failed checks as "FAIL name name ..." (check_name), or "" when none failed.
std::string failed_checks_text(const kms::Verdict& verdict);

/// The verdict in words, from its parts: "ok" for a `Response` that was decoded and verified against its
/// request (`verified`) with no failed check; else "FAIL <checks>" ("FAIL undecodable" when no check could
/// run); "HRESULT 0xC004F042 SL_E_..." and "FAULT 0x1C010003 nca_..." with `status`; "NO RESPONSE";
/// "ANSWER WITHOUT REQUEST". Failed checks of a non-response come first: "FAIL rpc, HRESULT ...".
std::string verdict_text(Outcome outcome, const kms::Verdict& verdict, bool verified, std::uint32_t status);

/// verdict_text() of an exchange of the conversation model.
std::string verdict_text(const Exchange& x);

}  // namespace kmscope
