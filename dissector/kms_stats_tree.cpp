// The stats tree of the kms tap: tshark -z kms,tree, and Statistics > KMS > Exchanges in Wireshark.
#include <epan/stats_tree.h>
#include <glib.h>

#include "kms_stats.hpp"

namespace {

using kmsdiss::KmsTapInfo;

int st_version = -1, st_product = -1, st_status = -1, st_epid = -1, st_verdict = -1;

// One order in tshark and in Wireshark. Wireshark's window (4.0) sorts every level by name, descending, whatever
// the tree's flags say; tshark sorts a node's children by the tree's flags (here the same: name, descending) but
// prints the top-level nodes in creation order. So the top-level nodes are created in descending name order.
constexpr guint kKmsTreeSortFlags = (ST_SORT_COL_NAME << ST_FLG_SRTCOL_SHIFT) | ST_FLG_SORT_DESC;

void kms_stats_tree_init(stats_tree* st) {
    st_epid = stats_tree_create_node(st, "Responses by server ePID", 0, STAT_DT_INT, TRUE);
    st_version = stats_tree_create_node(st, "Requests by version", 0, STAT_DT_INT, TRUE);
    st_product = stats_tree_create_node(st, "Requests by product", 0, STAT_DT_INT, TRUE);
    st_status = stats_tree_create_node(st, "Requests by license status", 0, STAT_DT_INT, TRUE);
    st_verdict = stats_tree_create_node(st, "Exchanges by verdict", 0, STAT_DT_INT, TRUE);
}

tap_packet_status kms_stats_tree_packet(stats_tree* st, packet_info*, epan_dissect_t*, const void* p, tap_flags_t) {
    const KmsTapInfo* ti = static_cast<const KmsTapInfo*>(p);
    if (ti->is_request) {
        char version[32];
        g_snprintf(version, sizeof version, "v%u.%u", ti->major, ti->minor);
        tick_stat_node(st, "Requests by version", 0, FALSE);
        tick_stat_node(st, version, st_version, FALSE);
        tick_stat_node(st, "Requests by product", 0, FALSE);
        tick_stat_node(st, ti->product ? ti->product : "(undecoded)", st_product, FALSE);
        tick_stat_node(st, "Requests by license status", 0, FALSE);
        tick_stat_node(st, ti->license_status ? ti->license_status : "(undecoded)", st_status, FALSE);
    } else {
        tick_stat_node(st, "Responses by server ePID", 0, FALSE);
        tick_stat_node(st, ti->epid ? ti->epid : "(none)", st_epid, FALSE);
        tick_stat_node(st, "Exchanges by verdict", 0, FALSE);
        tick_stat_node(st, ti->verdict ? ti->verdict : "unverified", st_verdict, FALSE);
    }
    return TAP_PACKET_REDRAW;
}

}  // namespace

namespace kmsdiss {

// The tree's menu path. Up to 4.2 a "/" in the name makes a submenu; from 4.3 the separator is "//"
// (STATS_TREE_MENU_SEPARATOR) and a single "/" is part of the entry's name, so "KMS/Exchanges" would be one
// flat entry at the bottom of the Statistics menu.
#ifdef STATS_TREE_MENU_SEPARATOR
constexpr char kTreeMenuPath[] = "KMS" STATS_TREE_MENU_SEPARATOR "Exchanges";
#else
constexpr char kTreeMenuPath[] = "KMS/Exchanges";
#endif

void register_stats_tree() {
    // A plugin's stats tree must be registered with stats_tree_register_plugin: Wireshark builds the menu entries
    // of the other stats trees before plugins are handed off, and lists plugin trees at the bottom of the
    // Statistics menu ("KMS > Exchanges"). A stat_tap_table_ui (the Clients table) is listed with the tables
    // and cannot be put in a submenu (its title is not split at "/"), so the two cannot share one submenu.
    stats_tree_register_plugin(kTapName, "kms", kTreeMenuPath, kKmsTreeSortFlags, kms_stats_tree_packet,
                               kms_stats_tree_init, nullptr);
}

}  // namespace kmsdiss
