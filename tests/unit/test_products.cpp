// The built-in product table (data/products.csv via scripts/gen_products.py) and user CSV merging.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "kmscope/epid.hpp"
#include "kmscope/products.hpp"

namespace kmscope {
namespace {

Guid G(const char* text) {
    auto g = Guid::parse(text);
    EXPECT_TRUE(g.has_value()) << text;
    return g.value_or(Guid{});
}

// docs/protocol.md §10.6, with the table's full names (they contain the document's words); N and protocol
// as the document gives them (0 = "–").
struct Representative {
    ProductKind kind;
    const char* guid;
    const char* name;
    int n_policy;
    int protocol;
    const char* csvlk;
    const char* kms;
    const char* gvlk;
};

// clang-format off
const Representative kRepresentative[] = {
    {ProductKind::App, "55c92734-d682-4d71-983e-d6ec3f16059f", "Windows", 0, 0, "", "", ""},
    {ProductKind::App, "59a52881-a989-479d-af46-f275c6370663", "Office 14 (2010)", 0, 0, "", "", ""},
    {ProductKind::App, "0ff1ce15-a989-479d-af46-f275c6370663", "Office 2013 / 2016 / 2019 / LTSC 2021 / LTSC 2024", 0, 0, "", "", ""},
    {ProductKind::Kms, "212a64dc-43b1-4d3d-a30c-2fc69d2095c6", "Windows Vista", 25, 4, "Windows", "", ""},
    {ProductKind::Kms, "7fde5219-fbfa-484a-82c9-34d1ad53e856", "Windows 7", 25, 4, "Windows", "", ""},
    {ProductKind::Kms, "3c40b358-5948-45af-923b-53d21fcc7e79", "Windows 8 (Volume)", 25, 5, "Windows", "", ""},
    {ProductKind::Kms, "cb8fc780-2c05-495a-9710-85afffc904d7", "Windows 8.1 (Volume)", 25, 6, "Windows", "", ""},
    {ProductKind::Kms, "58e2134f-8e11-4d17-9cb2-91069c151148", "Windows 10/11 2015 (Volume)", 25, 6, "Windows", "", ""},
    {ProductKind::Kms, "e1c51358-fe3e-4203-a4a2-3b6b20c9734e", "Windows 10/11 (Retail)", 25, 6, "Windows", "", ""},
    {ProductKind::Kms, "b2ca2689-a9a8-42d7-938d-cf8e9f201958", "Windows Server 2008 R2 C (Datacenter and Itanium)", 5, 4, "Windows", "", ""},
    {ProductKind::Kms, "8665cb71-468c-4aa3-a337-cb9bc9d5eaac", "Windows Server 2012", 5, 5, "Windows", "", ""},
    {ProductKind::Kms, "8449b1fb-f0ea-497a-99ab-66ca96e9a0f5", "Windows Server 2019", 5, 6, "Windows", "", ""},
    {ProductKind::Kms, "b74263e4-0f92-46c6-bcf8-c11d5efe2959", "Windows Server 2022", 5, 6, "Windows", "", ""},
    {ProductKind::Kms, "4b83307d-7788-50ff-8d1f-1861915bdb9d", "Windows Server 2025", 5, 6, "Windows", "", ""},
    {ProductKind::Kms, "e85af946-2e25-47b7-83e1-bebcebeac611", "Office 2010", 5, 4, "Office2010", "", ""},
    {ProductKind::Kms, "e6a6f1bf-9d40-40c3-aa9f-c77ba21578c0", "Office 2013", 5, 5, "Office2013", "", ""},
    {ProductKind::Kms, "85b5f61b-320b-4be3-814a-b76b2bfafc82", "Office 2016", 5, 6, "Office2016", "", ""},
    {ProductKind::Kms, "617d9eb1-ef36-4f82-86e0-a65ae07b96c6", "Office 2019", 5, 6, "Office2019", "", ""},
    {ProductKind::Kms, "86d50b16-4808-41af-b83b-b338274318b2", "Office 2021", 5, 6, "Office2021", "", ""},
    {ProductKind::Kms, "1b4db7eb-4057-5ddf-91e0-36dec72071f5", "Office 2024", 5, 6, "Office2024", "", ""},
    {ProductKind::Sku, "2de67392-b7a7-462a-b1ca-108dd189f588", "Windows 10/11 Pro", 25, 6, "Windows", "58e2134f-8e11-4d17-9cb2-91069c151148", "W269N-WFGWX-YVC9B-4J6C9-T83GX"},
    {ProductKind::Sku, "73111121-5638-40f6-bc11-f1d7b0d64300", "Windows 10/11 Enterprise", 25, 6, "Windows", "58e2134f-8e11-4d17-9cb2-91069c151148", "NPPR9-FWDCX-D2C8J-H872K-2YT43"},
    {ProductKind::Sku, "b92e9980-b9d5-4821-9c94-140f632f6312", "Windows 7 Professional", 25, 4, "Windows", "7fde5219-fbfa-484a-82c9-34d1ad53e856", "FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4"},
    {ProductKind::Sku, "34e1ae55-27f8-4950-8877-7a03be5fb181", "Windows Server 2019 Datacenter", 5, 6, "Windows", "8449b1fb-f0ea-497a-99ab-66ca96e9a0f5", "WMDGN-G9PQG-XVVXX-R3X43-63DFG"},
    {ProductKind::Sku, "ef6cfc9f-8c5d-44ac-9aad-de6a2ea0ae03", "Windows Server 2022 Datacenter", 5, 6, "Windows", "b74263e4-0f92-46c6-bcf8-c11d5efe2959", "WX4NM-KYWYW-QJJR4-XV3QB-6VM33"},
    {ProductKind::Sku, "6f327760-8c5c-417c-9b61-836a98287e0c", "Office Professional Plus 2010", 5, 4, "Office2010", "e85af946-2e25-47b7-83e1-bebcebeac611", "VYBBJ-TRJPB-QFQRF-QFT4D-H3GVB"},
    {ProductKind::Sku, "d450596f-894d-49e0-966a-fd39ed4c4c64", "Office Professional Plus 2016", 5, 6, "Office2016", "85b5f61b-320b-4be3-814a-b76b2bfafc82", "XQNVK-8JYDB-WJ9W3-YJ8YR-WFG99"},
    {ProductKind::Sku, "fbdb3e18-a8ef-4fb3-9183-dffd60bd0984", "Office LTSC Professional Plus 2021", 5, 6, "Office2021", "86d50b16-4808-41af-b83b-b338274318b2", "FXYTK-NJJ8C-GB6DW-3DYQT-6F7TH"},
};
// clang-format on

constexpr const char* kWindowsApp = "55c92734-d682-4d71-983e-d6ec3f16059f";
constexpr const char* kOffice2013App = "0ff1ce15-a989-479d-af46-f275c6370663";

TEST(ProductTable, BuiltinHas367Rows) {
    const auto& t = ProductTable::builtin();
    EXPECT_EQ(t.size(), 367u);
    int apps = 0, kms = 0, skus = 0;
    for (const auto& p : t.rows()) {
        apps += p.kind == ProductKind::App;
        kms += p.kind == ProductKind::Kms;
        skus += p.kind == ProductKind::Sku;
    }
    EXPECT_EQ(apps, 3);
    EXPECT_EQ(kms, 34);
    EXPECT_EQ(skus, 330);
    EXPECT_EQ(&ProductTable::builtin(), &t);  // built once
}

TEST(ProductTable, RepresentativeEntriesOfFactsSheet) {
    const auto& t = ProductTable::builtin();
    for (const auto& r : kRepresentative) {
        SCOPED_TRACE(r.guid);
        const ProductInfo* p = t.find(G(r.guid));
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(p->kind, r.kind);
        EXPECT_EQ(p->guid.to_string(), r.guid);
        EXPECT_EQ(p->name, r.name);
        EXPECT_EQ(t.name_or_guid(G(r.guid)), r.name);
        EXPECT_EQ(p->n_policy, r.n_policy);
        EXPECT_EQ(p->protocol, r.protocol);
        EXPECT_EQ(p->epid_csvlk, r.csvlk);
        EXPECT_EQ(p->gvlk, r.gvlk);
        if (*r.kms)
            EXPECT_EQ(p->kms, G(r.kms));
        else
            EXPECT_FALSE(p->kms.has_value());
        if (r.kind == ProductKind::App) {
            EXPECT_FALSE(p->app.has_value());
        } else {
            ASSERT_TRUE(p->app.has_value());
            const bool office = std::string_view(r.csvlk).starts_with("Office");
            const bool office2010 = std::string_view(r.csvlk) == "Office2010";
            EXPECT_EQ(*p->app,
                      G(office2010 ? "59a52881-a989-479d-af46-f275c6370663" : (office ? kOffice2013App : kWindowsApp)));
        }
    }
}

TEST(ProductTable, BuiltinReferencesAreConsistent) {
    const auto& t = ProductTable::builtin();
    for (const auto& p : t.rows()) {
        SCOPED_TRACE(p.guid.to_string());
        EXPECT_FALSE(p.name.empty());
        if (p.app) {
            const ProductInfo* app = t.find(*p.app);
            ASSERT_NE(app, nullptr);
            EXPECT_EQ(app->kind, ProductKind::App);
        }
        if (p.kms) {
            const ProductInfo* kms = t.find(*p.kms);
            ASSERT_NE(kms, nullptr);
            EXPECT_EQ(kms->kind, ProductKind::Kms);
            // A SKU carries its KMS group's policy.
            EXPECT_EQ(p.n_policy, kms->n_policy);
            EXPECT_EQ(p.protocol, kms->protocol);
            EXPECT_EQ(p.epid_csvlk, kms->epid_csvlk);
        }
        if (p.kind != ProductKind::App) {
            EXPECT_NE(csvlk_family(p.epid_csvlk), nullptr) << p.epid_csvlk;
            EXPECT_TRUE(p.protocol >= 4 && p.protocol <= 6);
            EXPECT_TRUE(p.n_policy == 5 || p.n_policy == 25);
        }
    }
}

TEST(ProductTable, BuiltinMatchesTheCsvParsedAtRunTime) {
    ProductTable parsed;
    auto n = parsed.merge_csv_file(KMSCOPE_SOURCE_DIR "/data/products.csv");
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 367u);
    const auto& builtin = ProductTable::builtin();
    ASSERT_EQ(parsed.size(), builtin.size());
    for (std::size_t i = 0; i < builtin.size(); ++i) EXPECT_EQ(parsed.rows()[i], builtin.rows()[i]) << i;
}

TEST(ProductTable, UnknownGuidIsNeverRejected) {
    const auto& t = ProductTable::builtin();
    Guid unknown = G("01234567-89ab-cdef-0123-456789abcdef");
    EXPECT_EQ(t.find(unknown), nullptr);
    EXPECT_EQ(t.name_or_guid(unknown), "01234567-89ab-cdef-0123-456789abcdef");
    EXPECT_EQ(t.name_or_guid(Guid{}), "00000000-0000-0000-0000-000000000000");
    ProductTable empty;
    EXPECT_EQ(empty.size(), 0u);
    EXPECT_EQ(empty.name_or_guid(G(kWindowsApp)), kWindowsApp);
}

TEST(ProductTable, CsvlkForKmsId) {
    const auto& t = ProductTable::builtin();
    EXPECT_EQ(csvlk_for_kms_id(G("e85af946-2e25-47b7-83e1-bebcebeac611"), t).name, "Office2010");
    EXPECT_EQ(csvlk_for_kms_id(G("e6a6f1bf-9d40-40c3-aa9f-c77ba21578c0"), t).name, "Office2013");
    EXPECT_EQ(csvlk_for_kms_id(G("85b5f61b-320b-4be3-814a-b76b2bfafc82"), t).name, "Office2016");
    EXPECT_EQ(csvlk_for_kms_id(G("617d9eb1-ef36-4f82-86e0-a65ae07b96c6"), t).name, "Office2019");
    EXPECT_EQ(csvlk_for_kms_id(G("86d50b16-4808-41af-b83b-b338274318b2"), t).name, "Office2021");
    EXPECT_EQ(csvlk_for_kms_id(G("7ba0bf23-d0f5-4072-91d9-d55af5a481b6"), t).name, "WinChinaGov");
    EXPECT_EQ(csvlk_for_kms_id(G("8449b1fb-f0ea-497a-99ab-66ca96e9a0f5"), t).name, "Windows");
    // Office 2013 (Pre-release) is answered with the Windows ePID by vlmcsd.
    EXPECT_EQ(csvlk_for_kms_id(G("aa4c7968-b9da-4680-92b6-acb25e2f866c"), t).name, "Windows");
    // Unknown KMS IDs and app rows (no family) fall back to Windows.
    EXPECT_EQ(csvlk_for_kms_id(G("01234567-89ab-cdef-0123-456789abcdef"), t).name, "Windows");
    EXPECT_EQ(csvlk_for_kms_id(G(kWindowsApp), t).name, "Windows");
    EXPECT_EQ(csvlk_for_kms_id(G("e85af946-2e25-47b7-83e1-bebcebeac611"), ProductTable{}).name, "Windows");
}

TEST(ProductTable, LicenseStatusNames) {
    EXPECT_EQ(license_status_name(0), "Unlicensed");
    EXPECT_EQ(license_status_name(1), "Licensed");
    EXPECT_EQ(license_status_name(2), "OOB grace");
    EXPECT_EQ(license_status_name(3), "OOT grace");
    EXPECT_EQ(license_status_name(4), "Non-genuine grace");
    EXPECT_EQ(license_status_name(5), "Notification");
    EXPECT_EQ(license_status_name(6), "Extended grace");
    EXPECT_EQ(license_status_name(7), "Unknown");
    EXPECT_EQ(license_status_name(0xFFFFFFFFu), "Unknown");
    EXPECT_EQ(product_kind_name(ProductKind::App), "app");
    EXPECT_EQ(product_kind_name(ProductKind::Kms), "kms");
    EXPECT_EQ(product_kind_name(ProductKind::Sku), "sku");
}

// ---- user CSV merging -------------------------------------------------------------------------

TEST(ProductCsv, MergeAddsNewGuid) {
    ProductTable t = ProductTable::with_builtin();
    auto n = t.merge_csv_text(
        "kind,guid,name,app_guid,kms_guid,n_policy,protocol,epid_csvlk,gvlk,source\n"
        "kms,11111111-2222-3333-4444-555555555555,Windows Server 2025 (real),55c92734-d682-4d71-983e-d6ec3f16059f,,5,"
        "6,Windows,,user\n"
        "sku,aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee,Windows Server 2025 Standard,55c92734-d682-4d71-983e-d6ec3f16059f,"
        "11111111-2222-3333-4444-555555555555,5,6,Windows,tvrh6-wht9p-qmxbx-dh4ph-dt3rr,user\n");
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 2u);
    EXPECT_EQ(t.size(), 369u);
    EXPECT_EQ(ProductTable::builtin().size(), 367u);  // the shared table is untouched

    const ProductInfo* kms = t.find(G("11111111-2222-3333-4444-555555555555"));
    ASSERT_NE(kms, nullptr);
    EXPECT_EQ(kms->kind, ProductKind::Kms);
    EXPECT_EQ(kms->name, "Windows Server 2025 (real)");
    EXPECT_EQ(kms->app, G(kWindowsApp));
    EXPECT_FALSE(kms->kms.has_value());
    EXPECT_EQ(kms->n_policy, 5);
    EXPECT_EQ(kms->protocol, 6);
    EXPECT_EQ(kms->epid_csvlk, "Windows");
    const ProductInfo* sku = t.find(G("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"));
    ASSERT_NE(sku, nullptr);
    EXPECT_EQ(sku->kind, ProductKind::Sku);
    EXPECT_EQ(sku->kms, G("11111111-2222-3333-4444-555555555555"));
    EXPECT_EQ(sku->gvlk, "TVRH6-WHT9P-QMXBX-DH4PH-DT3RR");  // upper-cased
    EXPECT_EQ(t.name_or_guid(G("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")), "Windows Server 2025 Standard");
    EXPECT_EQ(t.rows().back().guid, G("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"));
}

TEST(ProductCsv, MergeOverridesOnlyTheColumnsGiven) {
    ProductTable t = ProductTable::with_builtin();
    // Subset of columns, different order, upper-case header, CRLF, braces and upper-case GUID.
    auto n = t.merge_csv_text(
        "NAME,Kind,GUID,gvlk\r\n"
        "My Server 2019,kms,{8449B1FB-F0EA-497A-99AB-66CA96E9A0F5},\r\n"
        "\"Windows 10/11 Pro, renamed\",SKU,2de67392-b7a7-462a-b1ca-108dd189f588,\r\n");
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 2u);
    EXPECT_EQ(t.size(), 367u);

    const ProductInfo* kms = t.find(G("8449b1fb-f0ea-497a-99ab-66ca96e9a0f5"));
    ASSERT_NE(kms, nullptr);
    EXPECT_EQ(kms->name, "My Server 2019");
    EXPECT_EQ(kms->n_policy, 5);  // not in the header: kept
    EXPECT_EQ(kms->protocol, 6);
    EXPECT_EQ(kms->epid_csvlk, "Windows");
    EXPECT_EQ(kms->app, G(kWindowsApp));

    const ProductInfo* sku = t.find(G("2de67392-b7a7-462a-b1ca-108dd189f588"));
    ASSERT_NE(sku, nullptr);
    EXPECT_EQ(sku->name, "Windows 10/11 Pro, renamed");
    EXPECT_EQ(sku->gvlk, "");  // in the header but empty: cleared
    EXPECT_EQ(sku->kms, G("58e2134f-8e11-4d17-9cb2-91069c151148"));
    EXPECT_EQ(sku->n_policy, 25);

    // The built-in table itself is unchanged.
    EXPECT_EQ(ProductTable::builtin().name_or_guid(G("8449b1fb-f0ea-497a-99ab-66ca96e9a0f5")), "Windows Server 2019");
}

TEST(ProductCsv, Rfc4180Quoting) {
    ProductTable t;
    auto n = t.merge_csv_text(
        "\xEF\xBB\xBF"  // UTF-8 BOM, as spreadsheet programs write it
        "kind,guid,name,epid_csvlk\n"
        "\n"
        "kms,11111111-0000-0000-0000-000000000001,\"Comma, \"\"quoted\"\" and\nnew line\",Office2019\n"
        "  kms , 11111111-0000-0000-0000-000000000002 ,  \"Spaced\"  ,\n"
        "app,11111111-0000-0000-0000-000000000003,\"\",\n"  // empty name is rejected below, not here
    );
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().field, "csv:6");  // the record after a 2-line quoted field starts on line 6
    EXPECT_EQ(n.error().message, "name: missing");
    EXPECT_EQ(t.size(), 0u);  // all or nothing

    n = t.merge_csv_text(
        "kind,guid,name,epid_csvlk\n"
        "\n"
        "kms,11111111-0000-0000-0000-000000000001,\"Comma, \"\"quoted\"\" and\nnew line\",Office2019\n"
        "  kms , 11111111-0000-0000-0000-000000000002 ,  \"Spaced\"  ,\n"
        "sku,11111111-0000-0000-0000-000000000003,No newline at end,");
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 3u);
    EXPECT_EQ(t.name_or_guid(G("11111111-0000-0000-0000-000000000001")), "Comma, \"quoted\" and\nnew line");
    EXPECT_EQ(t.find(G("11111111-0000-0000-0000-000000000001"))->epid_csvlk, "Office2019");
    EXPECT_EQ(t.name_or_guid(G("11111111-0000-0000-0000-000000000002")), "Spaced");
    EXPECT_EQ(t.find(G("11111111-0000-0000-0000-000000000002"))->epid_csvlk, "");
    EXPECT_EQ(t.name_or_guid(G("11111111-0000-0000-0000-000000000003")), "No newline at end");
    EXPECT_EQ(t.find(G("11111111-0000-0000-0000-000000000003"))->kind, ProductKind::Sku);
}

struct BadCsv {
    const char* what;
    const char* csv;
    const char* field;    // expected ParseError::field ("csv:LINE")
    const char* message;  // expected ParseError::message
};

const BadCsv kBadCsv[] = {
    {"unknown kind",
     "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,A\nfoo,11111111-0000-0000-0000-000000000002,B\n",
     "csv:3", "kind: unknown kind \"foo\" (expected app, kms or sku)"},
    {"malformed guid", "kind,guid,name\r\nkms,11111111-0000-0000-0000-00000000001,A\r\n", "csv:2",
     "guid: malformed GUID \"11111111-0000-0000-0000-00000000001\""},
    {"duplicate guid",
     "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,A\nkms,11111111-0000-0000-0000-000000000002,B\n"
     "sku,{11111111-0000-0000-0000-000000000001},C\n",
     "csv:4", "guid: duplicate GUID 11111111-0000-0000-0000-000000000001 (first on line 2)"},
    {"too few fields", "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001\n", "csv:2",
     "expected 3 fields, got 2"},
    {"too many fields", "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,A,extra\n", "csv:2",
     "expected 3 fields, got 4"},
    {"quote in unquoted field", "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,Say \"hi\"\n", "csv:2",
     "quote inside an unquoted field (quote the whole field)"},
    {"text after closing quote", "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,\"A\"B\n", "csv:2",
     "unexpected text after a closing quote"},
    {"unterminated quote", "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,A\nkms,x,\"open\nstill open\n",
     "csv:3", "unterminated quoted field (opened on line 3)"},
    {"stray carriage return", "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,A\rB\n", "csv:2",
     "carriage return not followed by a line feed"},
    {"empty name", "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,\n", "csv:2", "name: missing"},
    {"bad app guid", "kind,guid,name,app_guid\nkms,11111111-0000-0000-0000-000000000001,A,windows\n", "csv:2",
     "app_guid: malformed GUID \"windows\""},
    {"bad kms guid", "kind,guid,name,kms_guid\nsku,11111111-0000-0000-0000-000000000001,A,1-2-3\n", "csv:2",
     "kms_guid: malformed GUID \"1-2-3\""},
    {"bad n_policy", "kind,guid,name,n_policy\nkms,11111111-0000-0000-0000-000000000001,A,-5\n", "csv:2",
     "n_policy: \"-5\" is not an integer in 0..1000"},
    {"n_policy too large", "kind,guid,name,n_policy\nkms,11111111-0000-0000-0000-000000000001,A,1001\n", "csv:2",
     "n_policy: \"1001\" is not an integer in 0..1000"},
    {"bad protocol", "kind,guid,name,protocol\nkms,11111111-0000-0000-0000-000000000001,A,7\n", "csv:2",
     "protocol: \"7\" is not 4, 5 or 6"},
    {"bad csvlk", "kind,guid,name,epid_csvlk\nkms,11111111-0000-0000-0000-000000000001,A,Office2030\n", "csv:2",
     "epid_csvlk: unknown CSVLK family \"Office2030\" (known: Windows, Office2010, Office2013, Office2016, "
     "WinChinaGov, Office2019, Office2021, Office2024)"},
    {"bad gvlk", "kind,guid,name,gvlk\nsku,11111111-0000-0000-0000-000000000001,A,ABCDE-FGHIJ\n", "csv:2",
     "gvlk: malformed key \"ABCDE-FGHIJ\" (expected XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)"},
    {"missing guid column", "kind,name\nkms,A\n", "csv:1", "header: required column guid is missing"},
    {"unknown column", "kind,guid,name,colour\n", "csv:1",
     "header: unknown column \"colour\" (known: kind,guid,name,app_guid,kms_guid,n_policy,protocol,epid_csvlk,gvlk,"
     "source)"},
    {"duplicate column", "kind,guid,name,Name\n", "csv:1", "header: column name appears twice"},
    {"empty input", "", "csv:1", "empty input, expected a header row with at least kind,guid,name"},
    {"blank lines only", "\n  \r\n", "csv:1", "empty input, expected a header row with at least kind,guid,name"},
};

TEST(ProductCsv, BadRowsAreRejectedWithTheirLine) {
    for (const auto& bad : kBadCsv) {
        SCOPED_TRACE(bad.what);
        ProductTable t = ProductTable::with_builtin();
        auto n = t.merge_csv_text(bad.csv);
        ASSERT_FALSE(n.ok());
        EXPECT_EQ(n.error().field, bad.field);
        EXPECT_EQ(n.error().message, bad.message);
        // Nothing was merged, not even the good rows before the bad one.
        EXPECT_EQ(t.size(), 367u);
        EXPECT_EQ(t.find(G("11111111-0000-0000-0000-000000000001")), nullptr);
    }
}

TEST(ProductCsv, ErrorOffsetIsTheStartOfTheRecord) {
    ProductTable t;
    const std::string csv = "kind,guid,name\nkms,11111111-0000-0000-0000-000000000001,A\nbad,x,y\n";
    auto n = t.merge_csv_text(csv);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().offset, csv.find("bad"));
    EXPECT_EQ(n.error().to_string(),
              "csv:3 at offset " + std::to_string(csv.find("bad")) + ": guid: malformed GUID \"x\"");
}

TEST(ProductCsv, MergeFile) {
    const std::string path = testing::TempDir() + "kmscope_products_test.csv";
    {
        std::ofstream out(path, std::ios::binary);
        out << "kind,guid,name\r\nkms,11111111-0000-0000-0000-000000000001,From file\r\nsku,nope,Broken\r\n";
    }
    ProductTable t = ProductTable::with_builtin();
    auto n = t.merge_csv_file(path);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().field, path + ":3");
    EXPECT_EQ(n.error().message, "guid: malformed GUID \"nope\"");
    {
        std::ofstream out(path, std::ios::binary);
        out << "kind,guid,name\r\nkms,11111111-0000-0000-0000-000000000001,From file\r\n";
    }
    n = t.merge_csv_file(path);
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 1u);
    EXPECT_EQ(t.name_or_guid(G("11111111-0000-0000-0000-000000000001")), "From file");
    std::remove(path.c_str());

    auto missing = t.merge_csv_file(path + ".does-not-exist");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().field, path + ".does-not-exist");
    EXPECT_EQ(missing.error().message.rfind("cannot open: ", 0), 0u) << missing.error().message;
}

}  // namespace
}  // namespace kmscope
