// Product identities of the KMS protocol (docs/protocol.md §10): the three application IDs, the KMS counted
// IDs and the SKU / activation IDs, with the N count policy, protocol version and ePID (CSVLK) family of
// each. The built-in table is compiled in from data/products.csv; users can merge their own CSV on top.
// Unknown GUIDs are never an error anywhere: lookups return nullptr and names fall back to the GUID text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kmscope/bytes.hpp"

namespace kmscope {

/// Which request field a product GUID belongs to: AppID, KMS counted ID (KMSID) or SKU (ActID).
enum class ProductKind { App, Kms, Sku };

/// One product row (columns of data/products.csv; the `source` column is not kept).
struct ProductInfo {
    ProductKind kind = ProductKind::Sku;
    Guid guid;
    std::string name;
    std::optional<Guid> app;  ///< application the KMS ID / SKU belongs to
    std::optional<Guid> kms;  ///< KMS counted ID a SKU is filed under
    int n_policy = 0;         ///< minimum count the client needs (25 Windows clients, 5 servers/Office); 0 = unset
    int protocol = 0;         ///< KMS protocol major version the client speaks (4, 5, 6); 0 = unset
    std::string epid_csvlk;   ///< CSVLK family whose ePID answers this product (see csvlk_family()); empty = unset
    std::string gvlk;         ///< public KMS client setup key, when known
    bool operator==(const ProductInfo&) const = default;
};

/// A GUID -> product lookup table. Copyable; the built-in instance is immutable and shared.
class ProductTable {
public:
    /// An empty table (use builtin() or with_builtin() for the shipped data).
    ProductTable() = default;

    /// The compiled-in table from data/products.csv (built once, thread-safe).
    static const ProductTable& builtin();
    /// A mutable copy of the built-in table, to merge a user file into.
    static ProductTable with_builtin();

    /// The row for a GUID of any kind, or nullptr when unknown.
    const ProductInfo* find(const Guid& g) const;
    /// The product's name, or the GUID's text when unknown (unknown GUIDs are never rejected).
    std::string name_or_guid(const Guid& g) const;

    /// Adds or overrides rows from a user CSV (RFC 4180, header row required, columns matched by name,
    /// kind/guid/name mandatory). For an existing GUID only the columns present in the header are
    /// replaced. All-or-nothing: on error nothing is merged and the error names the line. Returns the
    /// number of rows merged.
    Result<std::size_t> merge_csv_text(std::string_view csv);
    /// Same as merge_csv_text() for a file; errors name the file and the line.
    Result<std::size_t> merge_csv_file(const std::string& path);

    /// Number of rows.
    std::size_t size() const { return rows_.size(); }
    /// Every row, in insertion order (built-in rows in CSV order, then new user rows).
    std::span<const ProductInfo> rows() const { return rows_; }

private:
    Result<std::size_t> merge_csv(std::string_view csv, std::string_view origin);
    void upsert(ProductInfo info);

    std::vector<ProductInfo> rows_;
    std::unordered_map<Guid, std::size_t, GuidHash> index_;
};

/// Text of a ProductKind as used in the CSV: "app", "kms" or "sku".
std::string_view product_kind_name(ProductKind kind);

/// Display name of a request's LicenseStatus value (0 Unlicensed ... 6 Extended grace, else "Unknown"); a
/// view of a string literal (static, NUL-terminated).
std::string_view license_status_name(std::uint32_t status);

namespace detail {
/// One row of the generated built-in table (scripts/gen_products.py); empty strings / 0 mean "unset".
struct BuiltinProductRow {
    const char* kind;  // "app", "kms" or "sku"
    const char* guid;
    const char* name;
    const char* app_guid;
    const char* kms_guid;
    int n_policy;
    int protocol;
    const char* epid_csvlk;
    const char* gvlk;
};
/// The generated rows (defined in the build's generated products_data.cpp).
extern const BuiltinProductRow kBuiltinProducts[];
/// Number of generated rows.
extern const std::size_t kBuiltinProductCount;
}  // namespace detail

}  // namespace kmscope
