#include "options.hpp"

#include <glib.h>

#include <memory>

#include "kmscope/epid.hpp"
#include "util.hpp"

namespace kmscope::replay {

namespace {
struct KeyFile {
    GKeyFile* kf = g_key_file_new();
    ~KeyFile() { g_key_file_free(kf); }
};
struct Err {
    GError* e = nullptr;
    ~Err() {
        if (e) g_error_free(e);
    }
};
}  // namespace

std::string load_ini(const std::string& path, ServeOptions& o) {
    KeyFile k;
    Err err;
    if (!g_key_file_load_from_file(k.kf, path.c_str(), G_KEY_FILE_NONE, &err.e))
        return path + ": " + (err.e ? err.e->message : "cannot load");
    const char* g = "server";
    std::string problem;
    auto has = [&](const char* key) { return g_key_file_has_key(k.kf, g, key, nullptr); };
    auto str = [&](const char* key, std::string& out) {
        if (!has(key)) return;
        Err e;
        gchar* v = g_key_file_get_string(k.kf, g, key, &e.e);
        if (v) out = v;
        g_free(v);
    };
    auto list = [&](const char* key, std::vector<std::string>& out) {
        if (!has(key)) return;
        gsize n = 0;
        gchar** v = g_key_file_get_string_list(k.kf, g, key, &n, nullptr);
        out.clear();
        for (gsize i = 0; i < n; ++i)
            if (v[i][0]) out.emplace_back(v[i]);
        g_strfreev(v);
    };
    auto boolean = [&](const char* key, bool& out) {
        if (!has(key)) return;
        Err e;
        gboolean v = g_key_file_get_boolean(k.kf, g, key, &e.e);
        if (e.e)
            problem = path + ": [server] " + key + ": " + e.e->message;
        else
            out = v;
    };
    auto integer = [&](const char* key, auto& out, std::int64_t lo, std::int64_t hi) {
        if (!has(key)) return;
        Err e;
        gint64 v = g_key_file_get_int64(k.kf, g, key, &e.e);
        if (e.e)
            problem = path + ": [server] " + key + ": " + e.e->message;
        else if (v < lo || v > hi)
            problem = path + ": [server] " + key + ": " + std::to_string(v) + " out of range";
        else
            out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    };
    auto real = [&](const char* key, double& out) {
        if (!has(key)) return;
        Err e;
        double v = g_key_file_get_double(k.kf, g, key, &e.e);
        if (e.e)
            problem = path + ": [server] " + key + ": " + e.e->message;
        else
            out = v;
    };
    list("listen", o.listen);
    integer("port", o.port, 0, 65535);
    integer("threads", o.threads, 1, 256);
    boolean("foreground", o.foreground);
    boolean("daemon", o.daemon);
    str("state-dir", o.state_dir);
    str("pid-file", o.pid_file);
    str("ready-file", o.ready_file);
    boolean("ndr64", o.ndr64);
    boolean("btfn", o.btfn);
    integer("host-build", o.host_build, 0, 65535);
    integer("lcid", o.lcid, 0, 65535);
    integer("activation-interval", o.activation_interval, 0, 0xFFFFFFFFll);
    integer("renewal-interval", o.renewal_interval, 0, 0xFFFFFFFFll);
    str("hwid", o.hwid);
    str("from", o.from);
    integer("max-n-policy", o.max_n_policy, 0, 0xFFFFFFFFll);
    integer("max-time-skew", o.max_time_skew, 0, 1ll << 40);
    boolean("strict-opnum", o.strict_opnum);
    str("count-policy", o.count_policy);
    integer("fixed-count", o.fixed_count, 0, 0xFFFFFFFFll);
    str("db", o.db);
    str("db-sync", o.db_sync);
    real("idle-timeout", o.idle_timeout);
    integer("max-connections", o.max_connections, 1, 1000000);
    integer("max-pdu-size", o.max_pdu_size, 16, 65535);
    integer("max-requests-per-connection", o.max_requests_per_connection, 0, 0xFFFFFFFFll);
    integer("max-binds-per-connection", o.max_binds_per_connection, 0, 0xFFFFFFFFll);
    real("max-connection-age", o.max_connection_age);
    list("allow", o.allow);
    str("log-format", o.log_format);
    str("log-file", o.log_file);
    boolean("quiet", o.quiet);
    // [epid] and [hwid]: one key per CSVLK family.
    for (const char* group : {"epid", "hwid"}) {
        gsize n = 0;
        gchar** keys = g_key_file_get_keys(k.kf, group, &n, nullptr);
        for (gsize i = 0; keys && i < n; ++i) {
            gchar* v = g_key_file_get_string(k.kf, group, keys[i], nullptr);
            if (v) (group[0] == 'e' ? o.epid : o.family_hwid)[keys[i]] = v;
            g_free(v);
        }
        g_strfreev(keys);
    }
    // Unknown keys are errors: a typo must not silently fall back to a default.
    static const char* known[] = {"listen",
                                  "port",
                                  "threads",
                                  "foreground",
                                  "daemon",
                                  "state-dir",
                                  "pid-file",
                                  "ready-file",
                                  "ndr64",
                                  "btfn",
                                  "host-build",
                                  "lcid",
                                  "activation-interval",
                                  "renewal-interval",
                                  "hwid",
                                  "from",
                                  "max-n-policy",
                                  "max-time-skew",
                                  "strict-opnum",
                                  "count-policy",
                                  "fixed-count",
                                  "db",
                                  "db-sync",
                                  "idle-timeout",
                                  "max-connections",
                                  "max-pdu-size",
                                  "max-requests-per-connection",
                                  "max-binds-per-connection",
                                  "max-connection-age",
                                  "allow",
                                  "log-format",
                                  "log-file",
                                  "quiet"};
    gsize n = 0;
    gchar** keys = g_key_file_get_keys(k.kf, g, &n, nullptr);
    for (gsize i = 0; keys && i < n; ++i) {
        bool ok = false;
        for (const char* kk : known) ok = ok || std::string(kk) == keys[i];
        if (!ok && problem.empty()) problem = path + ": [server] unknown key '" + keys[i] + "'";
    }
    g_strfreev(keys);
    gsize ng = 0;
    gchar** groups = g_key_file_get_groups(k.kf, &ng);
    for (gsize i = 0; i < ng; ++i) {
        std::string gname = groups[i];
        if (gname != "server" && gname != "epid" && gname != "hwid" && problem.empty())
            problem = path + ": unknown group [" + gname + "]";
    }
    g_strfreev(groups);
    return problem;
}

std::vector<std::string> validate(const ServeOptions& o) {
    std::vector<std::string> p;
    if (o.count_policy != "fixed" && o.count_policy != "genuine")
        p.push_back("count-policy must be 'fixed' or 'genuine', not '" + o.count_policy + "'");
    if (o.count_policy == "genuine" && o.db.empty()) p.push_back("count-policy genuine needs --db FILE");
    if (o.db_sync != "full" && o.db_sync != "normal") p.push_back("db-sync must be 'full' or 'normal'");
    if (o.log_format != "text" && o.log_format != "json") p.push_back("log-format must be 'text' or 'json'");
    if (!o.hwid.empty() && !HwId::parse(o.hwid))
        p.push_back("hwid must be 16 hex digits (or empty for the generated one), not '" + o.hwid + "'");
    if (o.daemon && o.foreground) p.push_back("daemon and foreground exclude each other");
    for (const auto& [fam, h] : o.family_hwid) {
        if (!csvlk_family(fam)) p.push_back("unknown CSVLK family '" + fam + "' in hwid");
        if (!HwId::parse(h)) p.push_back("hwid for " + fam + " must be 16 hex digits");
    }
    for (const auto& [fam, e] : o.epid) {
        if (!csvlk_family(fam)) p.push_back("unknown CSVLK family '" + fam + "' in epid");
        auto parts = parse_epid(e);
        if (!parts) p.push_back("ePID for " + fam + ": " + parts.error().to_string());
    }
    for (const auto& a : o.allow)
        if (!Cidr::parse(a)) p.push_back("allow: '" + a + "' is not a network (CIDR)");
    if (o.idle_timeout <= 0) p.push_back("idle-timeout must be positive");
    if (o.max_connection_age < 0) p.push_back("max-connection-age must be 0 (unlimited) or positive");
    if (o.threads < 1) p.push_back("threads must be at least 1");
    return p;
}

std::vector<std::string> keep_restart_only(const ServeOptions& running, ServeOptions& next) {
    std::vector<std::string> changed;
    auto keep = [&](auto member, const char* name) {
        if (next.*member == running.*member) return;
        changed.emplace_back(name);
        next.*member = running.*member;
    };
    keep(&ServeOptions::listen, "listen");
    keep(&ServeOptions::port, "port");
    keep(&ServeOptions::threads, "threads");
    keep(&ServeOptions::daemon, "daemon");
    keep(&ServeOptions::pid_file, "pid-file");
    keep(&ServeOptions::ready_file, "ready-file");
    keep(&ServeOptions::db, "db");
    keep(&ServeOptions::db_sync, "db-sync");
    keep(&ServeOptions::state_dir, "state-dir");
    return changed;
}

}  // namespace kmscope::replay
