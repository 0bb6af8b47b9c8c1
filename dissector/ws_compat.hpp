// ws_compat.hpp: the differences between the Wireshark plugin APIs of 4.0, 4.4 and 4.6 that kms.so
// meets, in one place, so that the rest of the plugin has no version test. The plugin ABI is per
// minor version: kms.so is built for the version whose headers it sees (<ws_version.h>).
#pragma once

#include <epan/packet.h>
#include <epan/tvbuff.h>
#include <glib.h>
#include <ws_version.h>

#include <cstdint>

#define KMS_WS_AT_LEAST(major, minor) \
    (WIRESHARK_VERSION_MAJOR > (major) || (WIRESHARK_VERSION_MAJOR == (major) && WIRESHARK_VERSION_MINOR >= (minor)))

#if KMS_WS_AT_LEAST(4, 4)
#include <wsutil/plugins.h>
#endif

namespace wscompat {

#if KMS_WS_AT_LEAST(4, 2)
// 4.2 moved the API from gboolean to bool: prefs_register_bool_preference takes a bool*, and a heuristic
// dissector (heur_dissector_t) returns bool.
using pref_bool = bool;
using heur_result = bool;
#else
using pref_bool = gboolean;
using heur_result = gboolean;
#endif

// What `tshark -G plugins` lists as the plugin's type. 4.4 asks each plugin through plugin_describe()
// (WS_PLUGIN_DESC_DISSECTOR, wsutil/plugins.h); 4.0 has no such symbol and never looks the function up.
#if KMS_WS_AT_LEAST(4, 4)
constexpr std::uint32_t kPluginDescription = WS_PLUGIN_DESC_DISSECTOR;
#else
constexpr std::uint32_t kPluginDescription = 1;  // the value 4.4 gives WS_PLUGIN_DESC_DISSECTOR
#endif

// One byte of a tvb. 4.4 deprecates tvb_get_guint8 for tvb_get_uint8, which 4.0 does not have; the old name
// serves every version before 4.4.
inline std::uint8_t tvb_get_u8(tvbuff_t* tvb, const gint offset) {
#if KMS_WS_AT_LEAST(4, 4)
    return tvb_get_uint8(tvb, offset);
#else
    return tvb_get_guint8(tvb, offset);
#endif
}

}  // namespace wscompat
