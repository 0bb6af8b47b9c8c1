// The per-client table of the kms tap: tshark -z kms,clients, and Statistics > KMS Clients in Wireshark (a
// stat_tap_table_ui): one row per client machine ID, with its requests, first and last time, products and name.
#include <glib.h>
// After glib.h: epan/params.h, which stat_tap_ui.h includes first, uses glib's types without including glib.h.
#include <epan/stat_tap_ui.h>

#include <cstring>
#include <ctime>

#include "kms_stats.hpp"

namespace {

using kmsdiss::KmsTapInfo;

// The columns: fixed widths first and the workstation, whose width varies (and whose UTF-8 printf pads by bytes),
// last, so that tshark's text table (-z kms,clients, which prints each cell with its format) stays aligned; the
// column names are padded to the same widths, since tshark prints them without a format.
enum ClientColumn { kColCmid, kColRequests, kColFirst, kColLast, kColProducts, kColWorkstation, kColCount };

stat_tap_table_item client_fields[] = {
    {TABLE_ITEM_STRING, TAP_ALIGN_LEFT, "CMID                                ", "%-36s"},
    {TABLE_ITEM_UINT, TAP_ALIGN_RIGHT, "Requests", "%8u"},
    {TABLE_ITEM_STRING, TAP_ALIGN_LEFT, "First seen (UTC)   ", "%-19s"},
    {TABLE_ITEM_STRING, TAP_ALIGN_LEFT, "Last seen (UTC)    ", "%-19s"},
    {TABLE_ITEM_STRING, TAP_ALIGN_LEFT, "Products                                ", "%-40s"},
    {TABLE_ITEM_STRING, TAP_ALIGN_LEFT, "Workstation", "%s"},
};
const char* const kClientTableName = "KMS Clients";

void kms_clients_init(stat_tap_table_ui* ui) {
    stat_tap_table* table = stat_tap_find_table(ui, kClientTableName);
    if (table) {
        if (ui->stat_tap_reset_table_cb) ui->stat_tap_reset_table_cb(table);
        return;
    }
    table = stat_tap_init_table(kClientTableName, kColCount, 0, nullptr);
    stat_tap_add_table(ui, table);
}

void set_string(stat_tap_table* table, guint row, guint col, const char* text) {
    stat_tap_table_item_type* item = stat_tap_get_field_data(table, row, col);
    g_free(const_cast<char*>(item->value.string_value));
    item->type = TABLE_ITEM_STRING;
    item->value.string_value = g_strdup(text);
    stat_tap_set_field_data(table, row, col, item);
}

tap_packet_status kms_clients_packet(void* tapdata, packet_info* pinfo, epan_dissect_t*, const void* p, tap_flags_t) {
    const KmsTapInfo* ti = static_cast<const KmsTapInfo*>(p);
    if (!ti->is_request || !ti->cmid) return TAP_PACKET_DONT_REDRAW;
    stat_data_t* sd = static_cast<stat_data_t*>(tapdata);
    stat_tap_table* table = g_array_index(sd->stat_tap_data->tables, stat_tap_table*, 0);
    // Absolute time (UTC), as the client list of kms-analyze gives it, rather than seconds into the capture.
    char t[32] = "";
    const time_t secs = pinfo->abs_ts.secs;
    struct tm tm_utc;
    if (gmtime_r(&secs, &tm_utc)) std::strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S", &tm_utc);
    guint row = 0;
    for (; row < table->num_elements; ++row)
        if (g_strcmp0(stat_tap_get_field_data(table, row, kColCmid)->value.string_value, ti->cmid) == 0) break;
    if (row == table->num_elements) {
        stat_tap_table_item_type items[kColCount];
        std::memset(items, 0, sizeof items);
        items[kColCmid].type = TABLE_ITEM_STRING;
        items[kColCmid].value.string_value = g_strdup(ti->cmid);
        items[kColWorkstation].type = TABLE_ITEM_STRING;
        items[kColWorkstation].value.string_value = g_strdup(ti->workstation);
        items[kColProducts].type = TABLE_ITEM_STRING;
        items[kColProducts].value.string_value = g_strdup(ti->product);
        items[kColRequests].type = TABLE_ITEM_UINT;
        items[kColRequests].value.uint_value = 0;
        items[kColFirst].type = TABLE_ITEM_STRING;
        items[kColFirst].value.string_value = g_strdup(t);
        items[kColLast].type = TABLE_ITEM_STRING;
        items[kColLast].value.string_value = g_strdup(t);
        stat_tap_init_table_row(table, row, kColCount, items);
    }
    stat_tap_table_item_type* item = stat_tap_get_field_data(table, row, kColRequests);
    item->value.uint_value++;
    stat_tap_set_field_data(table, row, kColRequests, item);
    set_string(table, row, kColLast, t);
    // Products: a "; "-separated list of the distinct names this client asked for.
    item = stat_tap_get_field_data(table, row, kColProducts);
    const char* products = item->value.string_value;
    bool seen = false;
    if (products && ti->product) {
        gchar** names = g_strsplit(products, "; ", -1);
        for (gchar** n = names; *n && !seen; ++n) seen = g_strcmp0(*n, ti->product) == 0;
        g_strfreev(names);
        if (!seen) {
            gchar* joined = g_strconcat(products, "; ", ti->product, nullptr);
            set_string(table, row, kColProducts, joined);
            g_free(joined);
        }
    }
    return TAP_PACKET_REDRAW;
}

void kms_clients_free_item(stat_tap_table*, guint, guint column, stat_tap_table_item_type* field) {
    if (column == kColCmid || column == kColWorkstation || column == kColProducts || column == kColFirst ||
        column == kColLast) {
        g_free(const_cast<char*>(field->value.string_value));
        field->value.string_value = nullptr;
    }
}

void kms_clients_reset(stat_tap_table* table) {
    for (guint row = 0; row < table->num_elements; ++row)
        for (guint col = 0; col < kColCount; ++col)
            kms_clients_free_item(table, row, col, stat_tap_get_field_data(table, row, col));
    table->num_elements = 0;
}

}  // namespace

namespace kmsdiss {

void register_clients_table() {
    static tap_param client_params[] = {{PARAM_FILTER, "filter", "Filter", nullptr, TRUE}};
    static stat_tap_table_ui client_table = {REGISTER_PACKET_STAT_GROUP_UNSORTED,
                                             kClientTableName,
                                             kTapName,
                                             "kms,clients",
                                             kms_clients_init,
                                             kms_clients_packet,
                                             kms_clients_reset,
                                             kms_clients_free_item,
                                             nullptr,
                                             G_N_ELEMENTS(client_fields),
                                             client_fields,
                                             G_N_ELEMENTS(client_params),
                                             client_params,
                                             nullptr,
                                             0};
    register_stat_tap_table_ui(&client_table);
}

}  // namespace kmsdiss
