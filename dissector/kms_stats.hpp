// The kms tap and the two statistics that listen to it: the stats tree (tshark -z kms,tree; Statistics >
// KMS > Exchanges, kms_stats_tree.cpp) and the per-client table (tshark -z kms,clients; Statistics > KMS
// Clients, kms_clients_table.cpp). packet-kms.cpp registers the tap and queues one KmsTapInfo per KMS message.
#pragma once

#include <glib.h>

namespace kmsdiss {

/// The tap's name (register_tap), which both statistics listen to.
inline constexpr char kTapName[] = "kms";

/// What the dissector hands to taps (one per KMS message).
struct KmsTapInfo {
    bool is_request;
    guint16 major, minor;
    const char* product;         // request: SKU name
    const char* license_status;  // request
    const char* cmid;            // request
    const char* workstation;     // request
    const char* epid;            // response
    const char* verdict;         // response
};

/// Registers the stats tree. From the protocol's handoff, once: Wireshark lists plugin stats trees registered
/// there (stats_tree_register_plugin) in the Statistics menu.
void register_stats_tree();

/// Registers the client table (a stat_tap_table_ui). From the protocol's registration.
void register_clients_table();

}  // namespace kmsdiss
