// The ways kms-analyze prints records: JSON lines, EVE JSON lines, CSV and an aligned table.
#pragma once

#include <cstdio>
#include <memory>

#include "alerts.hpp"
#include "kmscope/products.hpp"
#include "records.hpp"

namespace kmscope::analyzer {

enum class Format { Table, Json, Csv, Eve };

/// Prints records, one line each (the table and CSV print their header before the first one).
class Printer {
public:
    virtual ~Printer() = default;
    virtual void print(const Record& record) = 0;
    /// An alert the record raised (alerts.hpp), right after the record; CSV has no row for it.
    virtual void alert(const Alert&, const Record&) {}
    /// After the last record of the last file (EVE's closing stats event).
    virtual void finish() {}
};

std::unique_ptr<Printer> make_json_printer(const ProductTable& products, std::FILE* out);
std::unique_ptr<Printer> make_eve_printer(const ProductTable& products, std::FILE* out);
std::unique_ptr<Printer> make_csv_printer(const ProductTable& products, std::FILE* out);
std::unique_ptr<Printer> make_table_printer(const ProductTable& products, std::FILE* out);

inline std::unique_ptr<Printer> make_printer(Format format, const ProductTable& products, std::FILE* out) {
    switch (format) {
        case Format::Json:
            return make_json_printer(products, out);
        case Format::Csv:
            return make_csv_printer(products, out);
        case Format::Eve:
            return make_eve_printer(products, out);
        case Format::Table:
            break;
    }
    return make_table_printer(products, out);
}

}  // namespace kmscope::analyzer
