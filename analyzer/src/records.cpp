#include "records.hpp"

namespace kmscope::analyzer {

std::optional<kms::Version> ExchangeRecord::version() const {
    if (x.request) return x.request->version;
    if (x.request_version) return x.request_version;
    if (x.response) return x.response->version;
    return std::nullopt;
}

}  // namespace kmscope::analyzer
