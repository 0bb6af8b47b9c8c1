// --filter KEY=VALUE[,VALUE...]: which records are reported. Every filter must match; within one
// filter, any of its values may. client/server match any record; product, version and verdict only
// exchanges.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kmscope/products.hpp"
#include "records.hpp"

namespace kmscope::analyzer {

struct Filter {
    std::string key;                  // client, server, product, version, verdict
    std::vector<std::string> values;  // lower case for product and verdict
};

/// Parses "key=value[,value]"; nullopt (with `error`) when malformed.
std::optional<Filter> parse_filter(const std::string& text, std::string& error);

/// True when the record passes every filter.
bool passes(const std::vector<Filter>& filters, const Record& record, const ProductTable& products);

}  // namespace kmscope::analyzer
